"""A general safetensors reader: headers and tensors with plain file reads, never a memory map.

Hand-written rather than safetensors' own readers, which map the file: mapped pages count in
the process's RSS, and RSS is the peak memory a worker reports (SafetensorsFile says more).
Conversion reads the headers for the linear-weight bytes (dualbench.models.convert); the INT4
artifact reader reads the tensors (dualbench.models.int4.artifact).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from dualbench.errors import Int4Error

# safetensors' dtype names -> torch dtypes: the ones our checkpoints hold.
_SAFETENSORS_DTYPES = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "I64": torch.int64,
    "I32": torch.int32,
    "I8": torch.int8,
    "U8": torch.uint8,
}


class SafetensorsFile:
    """A safetensors file read tensor by tensor with plain file reads.

    Written by hand (the format is an 8-byte header length, a JSON header of dtype, shape and
    byte offsets, then the data) because safetensors' own readers map the whole file, and every
    mapped page a read touches counts in the process's RSS until the map closes: reading the
    INT4 layers through a map would count the checkpoint twice in the peak memory a CPU worker
    reports. Here a layer's packed words are in memory only while it is repacked."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        self.data_start = 8 + header_len
        self.entries = {k: v for k, v in header.items() if k != "__metadata__"}

    def read(self, key: str) -> torch.Tensor:
        info = self.entries[key]
        begin, end = info["data_offsets"]
        dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        if end == begin:
            return torch.empty(info["shape"], dtype=dtype)
        buffer = torch.empty(end - begin, dtype=torch.uint8)  # not zero-filled, unlike bytearray
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            if f.readinto(buffer.numpy()) != end - begin:
                # Int4Error, as before this reader had its own module: the INT4 loader is the
                # only caller that reads tensor data, and an artifact is what gets rebuilt.
                raise Int4Error(f"{self.path} is truncated at {key}; rebuild it with convert")
        return buffer.view(dtype).reshape(info["shape"])
