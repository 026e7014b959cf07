"""Provenance of a measurement: the software and host it was taken with."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

PACKAGES = (
    "dualbench",
    "torch",
    "torch_npu",
    "transformers",
    "safetensors",
    "tokenizers",
    "snakemake",
    "pandas",
    "seaborn",
    "numpy",
    "nvidia-ml-py",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "packages": package_versions(),
    }
