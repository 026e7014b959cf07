"""Roofline arithmetic of a Llama decoder (GQA attention, SwiGLU MLP, RMSNorm): the bytes a
decode step reads, the FLOPs of prefill and of a decode step, and the MBU/MFU regime.

Pure: takes a plain shape dict (a ``SYNTHETIC_PRESETS`` entry or a checkpoint's config.json)
and numbers; nothing here measures. Notation: L layers, d hidden, f intermediate, H query
heads, G key/value heads, h head_dim, V vocab, B batch, T prompt tokens, n new tokens,
c context tokens (the KV-cache length a decode step reads), s bytes per value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# MBU or MFU at or above this fraction of the peak marks a run as bound by that resource.
BOUND_FRACTION = 0.5
# The regimes ``regime`` gives, in the order it tests them.
BANDWIDTH_BOUND, COMPUTE_BOUND, BELOW_ROOFS = "bandwidth-bound", "compute-bound", "below-roofs"
REGIMES = (BANDWIDTH_BOUND, COMPUTE_BOUND, BELOW_ROOFS)


@dataclass(frozen=True)
class Shape:
    """The dimensions of a Llama decoder that its bytes and FLOPs depend on."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict) -> Shape:
        """From a config.json dict: head_dim = config["head_dim"] or hidden_size //
        num_attention_heads; num_key_value_heads defaults to num_attention_heads and
        tie_word_embeddings to False (LlamaConfig's defaults)."""
        hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        return cls(
            hidden=hidden,
            intermediate=int(config["intermediate_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
        )

    @property
    def attention_params(self) -> int:
        """One layer's q, k, v, o projections (no bias): d·H·h + 2·d·G·h + H·h·d."""
        d, h = self.hidden, self.head_dim
        return d * self.heads * h + 2 * d * self.kv_heads * h + self.heads * h * d

    @property
    def mlp_params(self) -> int:
        """One layer's gate, up and down projections (no bias): 3·d·f."""
        return 3 * self.hidden * self.intermediate

    @property
    def block_linear_params(self) -> int:
        """The decoder blocks' linear layers: L·(attention_params + mlp_params)."""
        return self.layers * (self.attention_params + self.mlp_params)

    @property
    def lm_head_params(self) -> int:
        """The lm_head: V·d (with tied embeddings, the embedding table itself)."""
        return self.vocab * self.hidden

    @property
    def norm_params(self) -> int:
        """RMSNorm weights: two per layer plus the final norm, (2·L + 1)·d."""
        return (2 * self.layers + 1) * self.hidden

    @property
    def total_params(self) -> int:
        """Distinct parameters: embedding V·d + blocks' linears + norms, + V·d if untied."""
        untied_head = 0 if self.tied else self.lm_head_params
        return self.vocab * self.hidden + self.block_linear_params + self.norm_params + untied_head


def kv_bytes_per_token(shape: Shape, kv_bytes_per_value: float) -> float:
    """KV-cache bytes per token of one sequence: 2 (K and V) · L · G · h · s."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * kv_bytes_per_value


def decode_weight_bytes(
    shape: Shape, bytes_per_weight: float, linear_weight_bytes: float | None = None
) -> float:
    """Weight bytes one decode step reads: blocks + (V·d + (2·L + 1)·d)·bytes_per_weight, where
    blocks = linear_weight_bytes when given (the blocks' linear layers as stored, e.g. INT4
    packed values + scales + zero points), else block_linear_params·bytes_per_weight.

    The lm_head V·d is read whole every step; with tied embeddings it is the embedding table,
    counted once. The embedding lookup reads only B rows (B·d·bytes_per_weight, negligible and
    left out), so an untied embedding table is not counted. A checkpoint's total weight_bytes
    equals this for tied models (plus file headers) but overcounts untied ones by the
    embedding table, V·d·bytes_per_weight.
    bytes_per_weight is that of the tensors left unquantised (lm_head and norms).
    """
    blocks = (
        shape.block_linear_params * bytes_per_weight
        if linear_weight_bytes is None
        else linear_weight_bytes
    )
    return blocks + (shape.lm_head_params + shape.norm_params) * bytes_per_weight


def decode_step_bytes(
    shape: Shape,
    weight_bytes: float,
    batch: int,
    context_tokens: int,
    kv_bytes_per_value: float,
) -> float:
    """Bytes one decode step reads: weight_bytes + B · c · kv_bytes_per_token, with
    kv_bytes_per_token = 2·L·G·h·s.

    weight_bytes is what the step reads of the weights (see decode_weight_bytes); every
    sequence's KV cache is read at its current length c. Activations and the KV write of the
    new token (B·kv_bytes_per_token) are left out.
    """
    return weight_bytes + batch * context_tokens * kv_bytes_per_token(shape, kv_bytes_per_value)


def mean_decode_bytes(
    shape: Shape,
    weight_read_bytes: float,
    batch: int,
    prompt_tokens: int,
    new_tokens: int,
    kv_bytes_per_value: float,
) -> float:
    """Mean bytes per decode step of a request: the first token comes from prefill, so the
    decode steps are i = 1 .. n − 1 and step i reads the KV of T + i tokens. The mean of
    decode_step_bytes(c = T + i) over them is, in closed form,
    weight_read_bytes + B · (T + n/2) · kv_bytes_per_token.
    Raises ValueError when n < 2 (no decode step)."""
    if new_tokens < 2:
        raise ValueError(f"new_tokens must be >= 2 for a decode step, got {new_tokens}")
    mean_context = prompt_tokens + new_tokens / 2
    return weight_read_bytes + batch * mean_context * kv_bytes_per_token(shape, kv_bytes_per_value)


def prefill_flops(shape: Shape, batch: int, prompt_tokens: int, all_logits: bool = False) -> int:
    """FLOPs of prefilling B sequences of T tokens (a multiply-add counts 2):
    2 · block_linear_params · B·T  (the blocks' matmuls)
    + 2 · V·d · B  (the lm_head on the last position only, as generate() does with
      logits_to_keep=1; on all B·T positions when all_logits)
    + B · 2·2·L·H·h·T²/2  (causal attention: QKᵀ scores and the weighted sum of V, each
      2·h FLOPs per query-key pair per head, over T²/2 pairs: the causal half, diagonal
      not counted separately) = B · 2·L·H·h·T².
    Norms, rotary, softmax and SwiGLU's elementwise FLOPs are left out."""
    tokens = batch * prompt_tokens
    head_tokens = tokens if all_logits else batch
    matmuls = 2 * shape.block_linear_params * tokens + 2 * shape.lm_head_params * head_tokens
    attention = batch * 2 * shape.layers * shape.heads * shape.head_dim * prompt_tokens**2
    return matmuls + attention


def decode_flops_per_step(shape: Shape, batch: int, context_tokens: int) -> int:
    """FLOPs of one decode step over B sequences with c context tokens each:
    2 · (block_linear_params + V·d) · B  (matmuls, lm_head included)
    + B · 2·2·L·H·h·c  (the new query's scores against c keys and its weighted sum of c
    values). Elementwise FLOPs are left out, as in prefill_flops."""
    matmuls = 2 * (shape.block_linear_params + shape.lm_head_params) * batch
    attention = batch * 4 * shape.layers * shape.heads * shape.head_dim * context_tokens
    return matmuls + attention


def mean_decode_flops(shape: Shape, batch: int, prompt_tokens: int, new_tokens: int) -> float:
    """Mean of decode_flops_per_step(c = T + i) over steps i = 1 .. n − 1 (closed form):
    2 · (block_linear_params + V·d) · B + B · 4·L·H·h · (T + n/2). ValueError when n < 2."""
    if new_tokens < 2:
        raise ValueError(f"new_tokens must be >= 2 for a decode step, got {new_tokens}")
    matmuls = 2 * (shape.block_linear_params + shape.lm_head_params) * batch
    per_context = batch * 4 * shape.layers * shape.heads * shape.head_dim
    return matmuls + per_context * (prompt_tokens + new_tokens / 2)


def _positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def achieved_bandwidth(bytes_per_step: float, tpot_s: float) -> float:
    """Bytes/s: bytes_per_step / TPOT. One decode step yields one token per sequence, so a
    request's TPOT is the step time."""
    _positive("tpot_s", tpot_s)
    return bytes_per_step / tpot_s


def mbu(achieved_bytes_per_s: float, peak_bytes_per_s: float) -> float:
    """Model bandwidth utilisation: achieved bytes/s / peak memory bandwidth."""
    _positive("peak_bytes_per_s", peak_bytes_per_s)
    return achieved_bytes_per_s / peak_bytes_per_s


def mfu(flops_per_s: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s / peak FLOP/s (of the dtype used)."""
    _positive("peak_flops_per_s", peak_flops_per_s)
    return flops_per_s / peak_flops_per_s


def regime(mbu: float, mfu: float, bound_fraction: float = BOUND_FRACTION) -> str:
    """ "bandwidth-bound" when MBU ≥ bound_fraction and MBU ≥ MFU; "compute-bound" when
    MFU ≥ bound_fraction and MFU > MBU; else ``BELOW_ROOFS`` (MBU and MFU both under
    bound_fraction). bound_fraction defaults to BOUND_FRACTION = 0.5. ValueError on NaN.

    Below both roofs says where the run is, not why: calling it overhead-bound (launch,
    synchronisation, host time) would need the time outside the device's work measured, and no
    backend records it (on CPU the host is the device), so that label is never given."""
    if math.isnan(mbu) or math.isnan(mfu):
        raise ValueError(f"regime needs both MBU and MFU, got mbu={mbu!r}, mfu={mfu!r}")
    if mbu >= bound_fraction and mbu >= mfu:
        return BANDWIDTH_BOUND
    if mfu >= bound_fraction and mfu > mbu:
        return COMPUTE_BOUND
    return BELOW_ROOFS


def arithmetic_intensity(flops: float, bytes_moved: float) -> float:
    """FLOPs per byte: flops / bytes_moved."""
    _positive("bytes_moved", bytes_moved)
    return flops / bytes_moved
