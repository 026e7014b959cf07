"""What a model ``source`` may be, checked without fetching anything: the syntax of
``kind:reference`` and, for ``local:`` sources, the files a checkpoint directory must hold.
Validation uses it before any job runs; the models stage uses it again when it fetches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dualbench.errors import SourceError

# What may follow each kind's colon. Hub ids are [org/]name of letters, digits, "-", "_" and
# "."; a revision after "@" must not be empty. Nothing may carry surrounding whitespace: a
# stray space ("synthetic: llama-3.2-tiny") is a typo to report, not to strip silently.
_REFERENCES = {
    "synthetic": re.compile(r"[\w.-]+"),
    "hf": re.compile(r"[\w.-]+(/[\w.-]+)?(@[\w./-]+)?"),
    "modelscope": re.compile(r"[\w.-]+/[\w.-]+"),
    "local": re.compile(r"\S(.*\S)?"),
}
_FORMS = "synthetic:<preset>, hf:<repo>[@revision], modelscope:<org>/<name> or local:<dir>"


def parse_source(source: str) -> tuple[str, str]:
    """``kind:reference`` -> (kind, reference); SourceError with the fix when malformed."""
    kind, sep, ref = source.partition(":")
    if not sep or kind not in _REFERENCES:
        raise SourceError(f"model source {source!r} is not valid; use {_FORMS}")
    if ref != ref.strip():
        raise SourceError(
            f"model source {source!r} has whitespace around the reference; "
            f"write {kind}:{ref.strip()}"
        )
    if kind == "hf" and ref.endswith("@"):
        raise SourceError(
            f"model source {source!r} has an empty revision after @; write "
            f"hf:{ref[:-1]}@<revision> or drop the @"
        )
    if not _REFERENCES[kind].fullmatch(ref):
        raise SourceError(f"model source {source!r} is not valid; use {_FORMS}")
    return kind, ref


def validate_checkpoint(path: Path, source: str) -> dict[str, Any]:
    """Check that ``path`` is a loadable Hugging Face checkpoint with safetensors weights."""
    path = Path(path)
    if not path.is_dir():
        raise SourceError(f"model source {source!r}: {path} is not a directory; fix the path")
    if not (path / "config.json").is_file():
        raise SourceError(
            f"model source {source!r}: {path} has no config.json; not a HF checkpoint"
        )
    if not any(path.glob("*.safetensors")):
        raise SourceError(
            f"model source {source!r}: {path} has no *.safetensors weights (pickled .bin "
            "weights are never loaded); convert the checkpoint to safetensors"
        )
    tokenizer_files = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
    if not any((path / f).is_file() for f in tokenizer_files):
        raise SourceError(f"model source {source!r}: {path} has no tokenizer files; add them")
    config = json.loads((path / "config.json").read_text())
    return {
        "architectures": config.get("architectures"),
        "max_position_embeddings": config.get("max_position_embeddings"),
    }
