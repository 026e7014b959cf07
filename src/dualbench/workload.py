"""Token-exact, seeded prompts.

A prompt is a tensor of exactly ``prompt_tokens`` ids, built before the measured window:
- synthetic models: seeded random ids below Llama 3's special tokens;
- real models: the text corpus shipped with CPython (pydoc_data.topics, ~700 KB of English
  prose and code) tokenised once and sliced at seeded offsets, so prompts look like real text.
Each request of a slot cycles through a pool of distinct prompts; the pool depends only on
(seed, slot), so runs are reproducible and slots differ.
"""

from __future__ import annotations

import random
import zlib

from dualbench.model_shapes import FIRST_SPECIAL_TOKEN_ID

POOL_SIZE = 8


def _rng(seed: int, slot: str, index: int) -> random.Random:
    # crc32 rather than hash(): str hashes are salted per process.
    return random.Random(zlib.crc32(f"{seed}/{slot}/{index}".encode()))


def synthetic_prompt(
    n_tokens: int, batch: int, seed: int, slot: str, index: int
) -> list[list[int]]:
    rng = _rng(seed, slot, index)
    return [[rng.randrange(FIRST_SPECIAL_TOKEN_ID) for _ in range(n_tokens)] for _ in range(batch)]


def corpus_ids(tokenizer) -> list[int]:
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def corpus_prompt(
    ids: list[int], n_tokens: int, batch: int, seed: int, slot: str, index: int, bos: int | None
) -> list[list[int]]:
    rng = _rng(seed, slot, index)
    body = n_tokens - (1 if bos is not None else 0)
    if body > len(ids):
        # Longer than the corpus: repeat it. Speed does not depend on the text repeating.
        ids = ids * (body // len(ids) + 1)
    rows = []
    for _ in range(batch):
        start = rng.randrange(len(ids) - body + 1)
        rows.append(([bos] if bos is not None else []) + ids[start : start + body])
    return rows


def prompt_pool(
    n_tokens: int, batch: int, seed: int, slot: str, tokenizer=None, size: int = POOL_SIZE
) -> list[list[list[int]]]:
    """``size`` prompt batches of shape [batch][n_tokens]. ``tokenizer`` None means synthetic."""
    if tokenizer is None:
        return [synthetic_prompt(n_tokens, batch, seed, slot, i) for i in range(size)]
    ids = corpus_ids(tokenizer)
    bos = tokenizer.bos_token_id
    return [corpus_prompt(ids, n_tokens, batch, seed, slot, i, bos) for i in range(size)]
