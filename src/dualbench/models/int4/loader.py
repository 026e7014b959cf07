"""The INT4 loader: a causal LM whose quantised linears run on an INT4 kernel (load_int4_model).

The model is built on the meta device and each layer goes straight from the artifact to the
kernel's layout, so no dense 16-bit copy of the linear weights is ever allocated.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dualbench.errors import Int4Error
from dualbench.models.int4.artifact import ACTIVATION_DTYPE, read_int4_weights
from dualbench.models.int4.kernels import Kernel


class Int4Linear(nn.Module):
    """nn.Linear's forward on a kernel-held INT4 weight (no bias: Llama's projections have
    none, and the loader refuses a checkpoint that has one)."""

    def __init__(self, in_features: int, out_features: int, kernel: Kernel, state: dict):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.kernel = kernel
        self.state = state
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                # Not persistent: the kernel layout is a load-time product, never saved.
                self.register_buffer(key, value, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        state = {
            k: getattr(self, k) if isinstance(v, torch.Tensor) else v for k, v in self.state.items()
        }
        y = self.kernel.matmul(x.reshape(-1, self.in_features).contiguous(), state)
        return y[:, : self.out_features].reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, kernel={self.kernel.name}"


def load_int4_model(model_dir: Path, device: torch.device, kernel: Kernel):
    """A causal LM whose quantised linears are Int4Linear on ``kernel``, the rest loaded as
    saved. Built on the meta device, so no dense 16-bit copy of the linear weights is ever
    allocated (it would inflate the worker's peak memory, the figure INT4 is run for).

    Returns (model, info) with info = kernel name, scheme, layer count and timings (the
    worker records the whole load time beside them)."""
    import time

    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    started = time.perf_counter()
    checkpoint = read_int4_weights(model_dir)
    int4_layers = len(checkpoint.weights)
    read_s = time.perf_counter() - started
    config = AutoConfig.from_pretrained(model_dir)
    # Our loader, not transformers' compressed-tensors hook (which decompresses to dense).
    del config.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=ACTIVATION_DTYPE)
    # Every layer is checked before the first op call: a chip or shape the kernel cannot take
    # fails in one line, not halfway through the repack.
    for name, weight in checkpoint.weights.items():
        linear = model.get_submodule(name)
        if not isinstance(linear, nn.Linear) or linear.bias is not None:
            raise Int4Error(f"{model_dir}: {name} is not a bias-free Linear layer")
        kernel.check(name, weight)
    repack_s = 0.0
    for name in list(checkpoint.weights):
        # Popped, so each layer's artifact tensors are freed once its kernel state exists.
        weight = checkpoint.weights.pop(name)
        prepare_started = time.perf_counter()
        state = kernel.prepare(weight, device)
        repack_s += time.perf_counter() - prepare_started
        parent, _, child = name.rpartition(".")
        out_features, in_features = weight.shape
        module = Int4Linear(in_features, out_features, kernel, state)
        setattr(model.get_submodule(parent) if parent else model, child, module)
    tensors = {k: v.to(device=device) for k, v in checkpoint.tensors.items()}
    result = model.load_state_dict(tensors, strict=False, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    _rebuild_meta_buffers(model, config, device)
    leftover = [n for n, p in model.named_parameters() if p.is_meta]
    if leftover or result.unexpected_keys:
        raise Int4Error(
            f"{model_dir} does not match its config (missing {leftover[:3]}, unexpected "
            f"{result.unexpected_keys[:3]}); rebuild it with convert"
        )
    generation = Path(model_dir) / "generation_config.json"
    if generation.is_file():
        model.generation_config = GenerationConfig.from_pretrained(model_dir)
    model.eval()
    info = {
        "kernel": kernel.name,
        "group_size": checkpoint.scheme["group_size"],
        "symmetric": checkpoint.scheme["symmetric"],
        "int4_layers": int4_layers,
        # Reading the artifact (packed words excluded: they are read during the repack), and
        # unpacking + repacking every layer for the kernel.
        "read_s": round(read_s, 3),
        "repack_s": round(repack_s, 3),
    }
    return model, info


def _rebuild_meta_buffers(model: nn.Module, config, device) -> None:
    """Non-persistent buffers (rotary inverse frequencies) are computed in __init__ and never
    saved, so on the meta device they hold nothing: build those modules again for real."""
    for name, module in list(model.named_modules()):
        if not any(b.is_meta for b in module.buffers(recurse=False)):
            continue
        if not type(module).__name__.endswith("RotaryEmbedding"):
            raise Int4Error(f"cannot rebuild buffer of {name} ({type(module).__name__})")
        parent, _, child = name.rpartition(".")
        with torch.device(device):
            rebuilt = type(module)(config=config)
        setattr(model.get_submodule(parent) if parent else model, child, rebuilt)
