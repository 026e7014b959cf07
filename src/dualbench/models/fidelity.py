"""How far INT4 weights move a model's outputs from its 16-bit source.

Both models run in fp32 on the same fixed, seeded input set: the 16-bit source weights (exact
in fp32) against the artifact's weights dequantised exactly (dualbench.models.int4). Computing
both in fp32 isolates the quantisation error from any kernel's rounding; how closely each native
kernel follows the dequantised weights is tested separately (tests/unit/test_int4.py).
"""

from __future__ import annotations

from pathlib import Path

# The fixed input set: FIDELITY_SEQUENCES sequences of FIDELITY_TOKENS tokens, seed 0 (seeded
# random ids for synthetic models, slices of the shipped text corpus for real ones).
FIDELITY_SEQUENCES = 8
FIDELITY_TOKENS = 64
FIDELITY_SEED = 0


def compare_logits(reference, candidate) -> dict:
    """Next-token agreement of two [..., vocab] logit tensors, over every position.

    top1_agreement: share of positions where both pick the same most likely token.
    mean_kl: mean over positions of KL(P_reference || P_candidate), in nats.
    max_abs_logit_error: largest |candidate - reference| over all positions and tokens.
    """
    import torch

    ref = reference.float().reshape(-1, reference.shape[-1])
    cand = candidate.float().reshape(-1, candidate.shape[-1])
    log_p = torch.log_softmax(ref, dim=-1)
    log_q = torch.log_softmax(cand, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    return {
        "positions": ref.shape[0],
        "top1_agreement": float((ref.argmax(-1) == cand.argmax(-1)).float().mean()),
        "mean_kl": float(kl.mean()),
        "max_abs_logit_error": float((cand - ref).abs().max()),
    }


def fidelity_inputs(source: dict):
    import torch
    from transformers import AutoTokenizer

    from dualbench.workload import prompt_pool

    tokenizer = None
    if not source["synthetic"]:
        tokenizer = AutoTokenizer.from_pretrained(source["weights_dir"])
    (batch,) = prompt_pool(
        FIDELITY_TOKENS, FIDELITY_SEQUENCES, FIDELITY_SEED, "fidelity", tokenizer, size=1
    )
    return torch.tensor(batch, dtype=torch.long)


def measure_fidelity(source: dict, int4_dir: Path) -> dict:
    """compare_logits of the source model against the artifact in ``int4_dir``."""
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM

    from dualbench.models.int4.artifact import read_int4_weights

    model = AutoModelForCausalLM.from_pretrained(
        source["weights_dir"],
        dtype=torch.float32,
        use_safetensors=True,
        trust_remote_code=source.get("trust_remote_code", False),
    ).eval()
    ids = fidelity_inputs(source)
    with torch.inference_mode():
        reference = model(ids).logits
    # Swap in the dequantised weights. A new Parameter also unties a tied lm_head when it was
    # quantised, which keeps the 16-bit embedding as the artifact does.
    for name, weight in read_int4_weights(int4_dir).weights.items():
        model.get_submodule(name).weight = nn.Parameter(weight.dequantize(torch.float32))
    with torch.inference_mode():
        candidate = model(ids).logits
    return {
        **compare_logits(reference, candidate),
        "inputs": f"{FIDELITY_SEQUENCES} x {FIDELITY_TOKENS} tokens, seed {FIDELITY_SEED}",
        "compute_dtype": "float32",
    }
