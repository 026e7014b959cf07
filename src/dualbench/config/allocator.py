"""The grammar of ``allocator``: the caching-allocator settings a worker gets as
PYTORCH_NPU_ALLOC_CONF (npu) or PYTORCH_CUDA_ALLOC_CONF (cuda), checked before any job starts
(torch reads them only when a worker first allocates device memory, minutes into a run).

A setting is comma-separated ``key:value`` pairs; a value is one token or, for
roundup_power2_divisions, a bracketed list ``[size:divisions,...,>:divisions]``. Spaces are
ignored, as torch's tokenizer ignores them. The keys and their values are those the allocators
read:

- CUDA: torch's c10/core/AllocatorConfig.cpp (the keys every accelerator shares) and
  c10/cuda/CUDAAllocatorConfig.h ``getKeys()`` (the CUDA-only ones), as of torch 2.13, and the
  PyTorch docs, "CUDA semantics: Optimizing memory usage with PYTORCH_CUDA_ALLOC_CONF";
- NPU: torch_npu's docs, Ascend/pytorch docs/zh/environment_variable_reference/
  PYTORCH_NPU_ALLOC_CONF.md (v2.7.1-26.0.0), including its constraints: expandable_segments:True
  excludes max_split_size_mb and garbage_collection_threshold, and page_size combines with no
  other option.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dualbench.errors import ConfigError

_INT = re.compile(r"\d+")
_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _integer(low: int, high: int | None = None) -> tuple[Callable[[str], bool], str]:
    def ok(value: str) -> bool:
        return (
            bool(_INT.fullmatch(value))
            and low <= int(value)
            and (high is None or int(value) <= high)
        )

    unit = "an integer"
    return ok, (f"{unit} from {low} to {high}" if high is not None else f"{unit} >= {low}")


def _fraction(closed: bool) -> tuple[Callable[[str], bool], str]:
    def ok(value: str) -> bool:
        if not _NUMBER.fullmatch(value):
            return False
        number = float(value)
        return 0 < number <= 1 if closed else 0 < number < 1

    return ok, ("a number in (0, 1]" if closed else "a number strictly between 0 and 1, e.g. 0.8")


def _roundup(value: str) -> bool:
    if _INT.fullmatch(value):
        return _power_of_two(int(value))
    if not (value.startswith("[") and value.endswith("]")) or len(value) < 3:
        return False
    for pair in value[1:-1].split(","):
        size, sep, divisions = pair.partition(":")
        if not sep or not _INT.fullmatch(divisions):
            return False
        if int(divisions) != 0 and not _power_of_two(int(divisions)):
            return False
        if size != ">" and not (_INT.fullmatch(size) and _power_of_two(int(size))):
            return False
    return True


_BOOL = (lambda v: v in ("True", "False")), "True or False (capitalised)"
_ROUNDUP = (
    _roundup,
    "a power of 2 (e.g. 4), or [size_mb:divisions,...,>:divisions] with power-of-2 sizes and "
    "divisions a power of 2 or 0, e.g. [256:1,512:2,>:8]",
)
_MB_20 = _integer(20)

# Keys torch's caching allocator reads on every accelerator (c10/core/AllocatorConfig.cpp).
_SHARED = {
    "max_split_size_mb": _MB_20,
    "garbage_collection_threshold": _fraction(closed=False),
    "roundup_power2_divisions": _ROUNDUP,
    "expandable_segments": _BOOL,
    "pinned_use_background_threads": _BOOL,
}
CUDA_KEYS = {
    **_SHARED,
    "max_non_split_rounding_mb": _MB_20,
    "large_segment_size_mb": _integer(1),
    "pinned_max_round_threshold_mb": _integer(0),
    "pinned_max_cached_size_mb": _integer(0),
    "backend": ((lambda v: v in ("native", "cudaMallocAsync")), "native or cudaMallocAsync"),
    "release_lock_on_cudamalloc": _BOOL,
    "pinned_use_cuda_host_register": _BOOL,
    "pinned_num_register_threads": (
        (lambda v: bool(_INT.fullmatch(v)) and _power_of_two(int(v)) and int(v) <= 128),
        "a power of 2 up to 128",
    ),
    "pinned_reserve_segment_size_mb": _integer(0),
    "per_process_memory_fraction": _fraction(closed=True),
    "graph_capture_record_stream_reuse": _BOOL,
    "pinned_free_catch_all": _BOOL,
    "throw_on_cudamalloc_oom": _BOOL,
}
NPU_KEYS = {
    **_SHARED,
    "base_addr_aligned_kb": _integer(0, 16),
    "page_size": ((lambda v: v.lower() in ("1g", "1gb")), "1g (the only size torch_npu takes)"),
    "segment_size_mb": _integer(20, 512),
    "pin_memory_expandable_segments": _BOOL,
    "pinned_mem_register": _BOOL,
}
_ENV = {"cuda": "PYTORCH_CUDA_ALLOC_CONF", "npu": "PYTORCH_NPU_ALLOC_CONF"}


def parse_allocator(setting: str) -> list[tuple[str, str]]:
    """``key:value,...`` -> [(key, value)], spaces dropped; ConfigError when malformed."""
    text = setting.replace(" ", "").replace("\t", "")
    pairs, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0:
            break
        if char == "," and depth == 0:
            pairs.append(text[start:i])
            start = i + 1
    if start < len(text):  # torch takes a trailing comma
        pairs.append(text[start:])
    if depth != 0:
        raise ConfigError(
            f"allocator: {setting!r} has an unbalanced [ or ]; write a list as "
            "roundup_power2_divisions:[256:1,512:2,>:8]"
        )
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not (key and sep and value):
            raise ConfigError(
                f"allocator: {pair!r} is not a key:value pair; write comma-separated key:value "
                "pairs such as expandable_segments:True,max_split_size_mb:512"
            )
        parsed.append((key, value))
    return parsed


def check_allocator(setting: str, kind: str) -> None:
    """Check ``setting`` for the backend ``kind`` (npu or cuda; cpu or auto: either's keys,
    as what it will run on is not known or it is unused). One ConfigError line naming the
    key, the value and the allowed form."""
    if not setting.strip():
        return
    keys = {"npu": NPU_KEYS, "cuda": CUDA_KEYS}.get(kind, {**NPU_KEYS, **CUDA_KEYS})
    env = _ENV.get(kind, "PYTORCH_NPU_ALLOC_CONF or PYTORCH_CUDA_ALLOC_CONF")
    seen: set[str] = set()
    for key, value in parse_allocator(setting):
        if key in seen:
            raise ConfigError(f"allocator: {key} is given twice in {setting!r}; keep one")
        seen.add(key)
        if key not in keys:
            other = {"npu": ("cuda", CUDA_KEYS), "cuda": ("npu", NPU_KEYS)}.get(kind)
            if other and key in other[1]:
                raise ConfigError(
                    f"allocator: {key} is a {_ENV[other[0]]} key, but on {kind} the setting "
                    f"becomes {env}, which does not take it; remove {key}:{value}"
                )
            raise ConfigError(
                f"allocator: unknown key {key!r} (in {key}:{value}); {env} keys are "
                f"{', '.join(sorted(keys))}"
            )
        ok, form = keys[key]
        if not ok(value):
            raise ConfigError(f"allocator: {key}:{value} is not valid; {key} takes {form}")
    if kind == "npu":
        _check_npu_combinations(dict(parse_allocator(setting)))


def _check_npu_combinations(pairs: dict[str, str]) -> None:
    # Constraints from torch_npu's PYTORCH_NPU_ALLOC_CONF.md ("使用约束").
    if pairs.get("expandable_segments") == "True":
        clash = [k for k in ("max_split_size_mb", "garbage_collection_threshold") if k in pairs]
        if clash:
            raise ConfigError(
                f"allocator: expandable_segments:True cannot be combined with {clash[0]} on an "
                f"NPU (torch_npu); drop {clash[0]} or set expandable_segments:False"
            )
    if "page_size" in pairs and len(pairs) > 1:
        raise ConfigError(
            "allocator: page_size combines with no other PYTORCH_NPU_ALLOC_CONF option "
            "(torch_npu); use page_size alone or drop it"
        )


def cpu_warning(setting: str) -> list[str]:
    """The warning for an allocator setting on a CPU, where nothing reads it."""
    if not setting.strip():
        return []
    return [
        f"allocator: {setting!r} has no effect on a CPU (it becomes PYTORCH_NPU_ALLOC_CONF or "
        "PYTORCH_CUDA_ALLOC_CONF on an accelerator); remove it or run on npu or cuda"
    ]
