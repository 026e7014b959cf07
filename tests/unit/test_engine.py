"""One timed generate call: fixed output length (EOS cannot end a request early) and one
synchronised timestamp per decoding step."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from dualbench.measure.engine import TimestampStreamer, generation_config, timed_generate

PAD = 128001  # the tiny preset's eos, used as pad by the synthetic build


class SyncCounter:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1


@pytest.fixture(scope="module")
def model(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype="auto").eval()


def prompt(batch: int, n: int = 8):
    ids = torch.tensor([[(17 * (b + 1) + 31 * i) % 128000 for i in range(n)] for b in range(batch)])
    return ids, torch.ones_like(ids)


def greedy_first_tokens(model, ids, mask) -> list[int]:
    """The token each sequence emits first under plain greedy decoding."""
    plain = GenerationConfig(max_new_tokens=1, do_sample=False, pad_token_id=PAD)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=plain)
    return out[:, ids.shape[1]].tolist()


def test_generation_config_fixes_the_output_length():
    cfg = generation_config(new_tokens=12, pad_token_id=7, eos_token_id=[8, 9])
    assert (cfg.max_new_tokens, cfg.min_new_tokens) == (12, 12)
    assert cfg.do_sample is False
    assert cfg.num_beams == 1
    assert (cfg.temperature, cfg.top_p, cfg.top_k) == (None, None, None)
    assert (cfg.pad_token_id, cfg.eos_token_id) == (7, [8, 9])


@pytest.mark.parametrize("batch", [1, 3])
def test_eos_as_greedy_choice_still_delivers_n_tokens(model, batch):
    n_new = 6
    ids, mask = prompt(batch)
    eos = sorted(set(greedy_first_tokens(model, ids, mask)))
    # Without min_new_tokens, making the greedy choice EOS ends every sequence at its first
    # token: this is what the fixed-work config must prevent.
    stopping = GenerationConfig(
        max_new_tokens=n_new, do_sample=False, pad_token_id=PAD, eos_token_id=eos
    )
    with torch.inference_mode():
        short = model.generate(input_ids=ids, attention_mask=mask, generation_config=stopping)
    assert short.shape[1] - ids.shape[1] == 1

    sync = SyncCounter()
    result = timed_generate(model, ids, mask, generation_config(n_new, PAD, eos), sync)
    assert result["delivered"] == n_new
    times = result["token_ns"]
    assert len(times) == n_new
    assert times[0] > result["submit_ns"]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    # once before submit, then once per decoding step
    assert sync.n == n_new + 1


def test_streamer_skips_the_prompt_and_syncs_per_step():
    sync = SyncCounter()
    streamer = TimestampStreamer(sync)
    streamer.put(torch.zeros(2, 16, dtype=torch.long))  # the prompt
    assert streamer.token_ns == []
    assert sync.n == 0
    for step in range(3):
        streamer.put(torch.zeros(2, dtype=torch.long))
        assert sync.n == step + 1
        assert len(streamer.token_ns) == step + 1
    streamer.end()
    assert len(streamer.token_ns) == 3
    assert streamer.token_ns == sorted(streamer.token_ns)


def test_streamer_timestamp_follows_the_synchronisation():
    # the timestamp is taken after synchronize() returns, so it covers the device work
    import time

    marks = []
    streamer = TimestampStreamer(lambda: marks.append(time.perf_counter_ns()))
    streamer.put("prompt")
    streamer.put("step")
    assert len(marks) == 1
    assert streamer.token_ns[0] >= marks[0]


class SetAfter(SyncCounter):
    """A synchronize that sets ``event`` (the trial's stop) on its n-th call."""

    def __init__(self, event, n: int):
        super().__init__()
        self.event, self.at = event, n

    def __call__(self):
        super().__call__()
        if self.n == self.at:
            self.event.set()


def test_the_stop_cuts_a_call_between_steps_and_records_when(model):
    import threading

    stop = threading.Event()
    ids, mask = prompt(1)
    # synchronize: once before submit, then once per step; the stop comes with step 3's
    result = timed_generate(
        model, ids, mask, generation_config(8, PAD, PAD), SetAfter(stop, 4), cut=stop
    )
    assert result["delivered"] == len(result["token_ns"]) == 3
    assert result["cut_ns"] >= result["token_ns"][-1]


def test_a_call_started_after_the_stop_is_cut_before_its_prefill(model):
    import threading

    stop = threading.Event()
    stop.set()
    ids, mask = prompt(1)
    result = timed_generate(
        model, ids, mask, generation_config(8, PAD, PAD), SyncCounter(), cut=stop
    )
    assert result["token_ns"] == [] and result["delivered"] == 0
    assert result["cut_ns"] >= result["submit_ns"]


def test_a_whole_call_is_never_cut(model):
    import threading

    stop = threading.Event()
    ids, mask = prompt(1)
    # the stop comes with the last step's token: the call is complete, not cut
    result = timed_generate(
        model, ids, mask, generation_config(4, PAD, PAD), SetAfter(stop, 5), cut=stop
    )
    assert result["delivered"] == 4 and "cut_ns" not in result
