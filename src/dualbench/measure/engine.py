"""One generate call with a host timestamp per delivered token (DESIGN §6, fixed work).

Decoding is greedy with ``min_new_tokens = max_new_tokens``, so EOS can never end a request
early; the delivered count is still checked by the caller. Timestamps are
``time.perf_counter_ns()`` (CLOCK_MONOTONIC: comparable across the worker processes of one
host), taken after the device is synchronised, so a timestamp means the token exists.

In a lockstep run (dualbench.measure.lockstep) the streamer is also where a worker takes and
passes the ring's turn: generate() calls it before the prefill and after every step, the only
points between forward passes that a caller can reach without rewriting generate().

The same points let a trial's ``stop`` cut the call in flight (``cut``): once every slot has met
its criteria, the rest of that call would run past the trial's window for nothing, and with
long prompts or serial turns it was up to half of a co-located or lockstep trial. The cut is
taken only between forward passes and only after the stop, so everything the window holds ran
exactly as it would have uncut (dualbench.analysis.metrics.call_end_ns).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from transformers import GenerationConfig
from transformers.generation.streamers import BaseStreamer


class CallCut(Exception):
    """Raised from the streamer to end a generate call once the trial's stop has come. An
    exception is the one way out of generate() between forward passes from a callback; the
    call's KV cache is its own, so nothing outlives it."""


class TimestampStreamer(BaseStreamer):
    """Records when each decoding step delivered its tokens. generate() first puts the prompt,
    then one tensor of ``batch`` tokens per step.

    With a ``ring`` (lockstep), ``steps`` is the call's fixed token count: the turn is taken
    when the prompt is put (before the prefill) and after each step's token but the last, and
    passed on after each step's token, once the device has finished it. ``turns_ns`` holds one
    [acquired_ns, released_ns] per forward pass taken in turn (none once the ring is broken:
    the worker then runs free).

    With a ``cut`` event (a threading.Event: the trial's stop), the streamer raises CallCut
    before the prefill and before each further step once the event is set; ``cut_ns`` is when.
    A call whose last token has come is complete and never cut."""

    def __init__(self, synchronize: Callable[[], None], ring=None, steps: int = 0, cut=None):
        self._synchronize = synchronize
        self._cut = cut
        self.cut_ns: int | None = None
        self._prompt_seen = False
        self.token_ns: list[int] = []
        self._ring = ring
        self._steps = steps
        self._acquired_ns: int | None = None
        self.turns_ns: list[list[int]] = []

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            self._check_cut()
            self._take_turn()
            return
        self._synchronize()
        self.token_ns.append(time.perf_counter_ns())
        if self._ring is not None:
            released_ns = self._ring.release()
            if self._acquired_ns is not None and released_ns is not None:
                self.turns_ns.append([self._acquired_ns, released_ns])
            self._acquired_ns = None
        if len(self.token_ns) < self._steps:
            # After the turn is passed on: a cut call never holds the ring.
            self._check_cut()
            self._take_turn()

    def _check_cut(self) -> None:
        if self._cut is not None and self._cut.is_set():
            self.cut_ns = time.perf_counter_ns()
            raise CallCut

    def _take_turn(self) -> None:
        if self._ring is not None:
            self._acquired_ns = self._ring.acquire()

    def end(self) -> None:
        pass


def generation_config(new_tokens: int, pad_token_id: int, eos_token_id) -> GenerationConfig:
    # Sampling knobs set to None explicitly: a real checkpoint's generation_config.json (Llama
    # 3.2 Instruct ships temperature/top_p) must not leak into greedy decoding.
    return GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        num_beams=1,
        temperature=None,
        top_p=None,
        top_k=None,
        use_cache=True,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
    )


def timed_generate(
    model, input_ids, attention_mask, config: GenerationConfig, synchronize, ring=None, cut=None
) -> dict:
    """Run one request batch; return submit time, per-step token times and delivered count;
    with a lockstep ``ring`` (dualbench.measure.lockstep.TokenRing), each forward pass in turn
    and the turns' times (``turns_ns``); with a ``cut`` event (TimestampStreamer), a call cut
    by it carries ``cut_ns`` and the tokens it delivered before."""
    import torch

    streamer = TimestampStreamer(synchronize, ring, config.max_new_tokens, cut)
    synchronize()
    submit_ns = time.perf_counter_ns()
    try:
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                streamer=streamer,
            )
        delivered = int(out.shape[1] - input_ids.shape[1])
    except CallCut:
        delivered = len(streamer.token_ns)
    record = {
        "submit_ns": submit_ns,
        "token_ns": streamer.token_ns,
        "delivered": delivered,
    }
    if streamer.cut_ns is not None:
        record["cut_ns"] = streamer.cut_ns
    if ring is not None:
        record["turns_ns"] = streamer.turns_ns
    return record


def load_model(model_dir, device, backend_kind: str, int4_kernel: str = "native"):
    """The converted model in ``model_dir`` on ``device``, ready to generate.

    Returns (model, info): info["kernel"] names what computes the linear layers, so a run
    record says which kernel ran (for INT4 also the scheme and the repack time)."""
    import json
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    conversion = json.loads((Path(model_dir) / "conversion.json").read_text())
    if conversion["precision"] == "int4":
        from dualbench.models.int4.kernels import kernel_for
        from dualbench.models.int4.loader import load_int4_model

        return load_int4_model(model_dir, device, kernel_for(backend_kind, int4_kernel))
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype="auto",
        use_safetensors=True,
        trust_remote_code=conversion.get("trust_remote_code", False),
    )
    return model.to(device).eval(), {"kernel": "dense: torch.nn.functional.linear"}
