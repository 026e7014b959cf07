"""Token-exact, seeded prompts: shapes, determinism (also across processes), slot/index
independence, and corpus slicing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dualbench import workload
from dualbench.workload import corpus_prompt, prompt_pool, synthetic_prompt


@pytest.mark.parametrize(("n", "batch"), [(1, 1), (7, 1), (33, 3)])
def test_synthetic_prompt_is_token_exact(n, batch):
    rows = synthetic_prompt(n, batch, seed=0, slot="A", index=0)
    assert len(rows) == batch
    assert all(len(r) == n for r in rows)
    assert all(isinstance(t, int) and 0 <= t < 128000 for r in rows for t in r)


def test_synthetic_prompt_ids_stay_below_special_tokens():
    rows = synthetic_prompt(4096, 4, seed=3, slot="B", index=5)
    ids = [t for r in rows for t in r]
    assert max(ids) < 128000
    assert len(set(ids)) > 4000  # spread over the vocabulary, not a constant


def test_synthetic_prompt_is_deterministic():
    assert synthetic_prompt(64, 2, 1, "A", 3) == synthetic_prompt(64, 2, 1, "A", 3)


def test_synthetic_prompt_differs_by_slot_index_seed_and_row():
    ref = synthetic_prompt(64, 2, 0, "A", 0)
    assert synthetic_prompt(64, 2, 0, "B", 0) != ref
    assert synthetic_prompt(64, 2, 0, "A", 1) != ref
    assert synthetic_prompt(64, 2, 1, "A", 0) != ref
    assert ref[0] != ref[1]  # the sequences of one batch differ too


def test_synthetic_prompt_is_the_same_in_another_process():
    # str hashes are salted per process; prompts must not depend on them
    code = (
        "import json; from dualbench.workload import synthetic_prompt; "
        "print(json.dumps(synthetic_prompt(32, 2, 5, 'B', 4)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == synthetic_prompt(32, 2, 5, "B", 4)


def test_prompt_pool_synthetic():
    pool = prompt_pool(16, 2, seed=0, slot="A")
    assert len(pool) == workload.POOL_SIZE == 8
    assert all(len(b) == 2 and all(len(r) == 16 for r in b) for b in pool)
    assert len({json.dumps(b) for b in pool}) == 8  # distinct prompts
    assert pool[3] == synthetic_prompt(16, 2, 0, "A", 3)
    assert prompt_pool(16, 2, seed=0, slot="B") != pool


CORPUS = list(range(100, 110))  # 10 ids: 100..109


def is_cyclic_run(ids: list[int]) -> bool:
    """True if ``ids`` is a contiguous slice of CORPUS repeated end to end."""
    return all(b == (a + 1 if a < 109 else 100) for a, b in zip(ids, ids[1:], strict=False))


def test_corpus_prompt_with_bos():
    rows = corpus_prompt(CORPUS, 5, 3, seed=0, slot="A", index=0, bos=1)
    assert len(rows) == 3
    for row in rows:
        assert len(row) == 5
        assert row[0] == 1
        assert row[1:] == CORPUS[row[1] - 100 : row[1] - 100 + 4]


def test_corpus_prompt_without_bos():
    rows = corpus_prompt(CORPUS, 6, 2, seed=0, slot="A", index=0, bos=None)
    for row in rows:
        assert len(row) == 6
        assert row == CORPUS[row[0] - 100 : row[0] - 100 + 6]


def test_corpus_prompt_whole_corpus():
    assert corpus_prompt(CORPUS, 11, 1, 0, "A", 0, bos=1) == [[1, *CORPUS]]
    assert corpus_prompt(CORPUS, 10, 1, 0, "A", 0, bos=None) == [CORPUS]


@pytest.mark.parametrize(("n", "bos"), [(25, 1), (25, None), (101, 1)])
def test_corpus_prompt_longer_than_corpus(n, bos):
    rows = corpus_prompt(CORPUS, n, 2, seed=4, slot="B", index=2, bos=bos)
    for row in rows:
        assert len(row) == n
        body = row[1:] if bos is not None else row
        if bos is not None:
            assert row[0] == bos
        assert set(body) <= set(CORPUS)
        assert is_cyclic_run(body)


def test_corpus_prompt_single_token_with_bos_is_bos():
    assert corpus_prompt(CORPUS, 1, 2, 0, "A", 0, bos=7) == [[7], [7]]


def test_corpus_prompt_is_seeded():
    a = [corpus_prompt(list(range(1000)), 8, 1, 0, "A", i, None) for i in range(4)]
    assert a == [corpus_prompt(list(range(1000)), 8, 1, 0, "A", i, None) for i in range(4)]
    b = [corpus_prompt(list(range(1000)), 8, 1, 0, "B", i, None) for i in range(4)]
    assert a != b


class WordLengthTokenizer:
    """A stand-in tokenizer: one id per whitespace word (its length), BOS 128000."""

    bos_token_id = 128000

    def __init__(self):
        self.calls = []

    def __call__(self, text, add_special_tokens=True):
        self.calls.append(add_special_tokens)
        return {"input_ids": [len(w) for w in text.split()]}


def test_prompt_pool_with_tokenizer_uses_the_corpus():
    tok = WordLengthTokenizer()
    pool = prompt_pool(12, 2, seed=0, slot="A", tokenizer=tok, size=3)
    assert tok.calls == [False]  # the corpus is tokenised once, without special tokens
    assert len(pool) == 3
    for batch in pool:
        assert len(batch) == 2
        for row in batch:
            assert len(row) == 12
            assert row[0] == 128000
            assert all(0 < t < 128000 for t in row[1:])
