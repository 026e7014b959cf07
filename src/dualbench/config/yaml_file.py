"""Reading a YAML config file: PyYAML's safe loader, except that a key given twice is an
error (the plain loader, and Snakemake's, silently keep the last value), and every way a file
can fail to be a config (missing, unreadable, a syntax error, empty, a top level that is not
a mapping) is one line naming the file, the line where there is one, and the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from dualbench.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: the
    plain loader (and Snakemake's) silently keeps the last value."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"{self.name} line {line}: key {key!r} is given twice (first on line "
                    f"{seen[key]}); keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def shown_path(path: str | Path) -> str:
    """``path`` as a message shows it: relative to the working directory when inside it
    (Snakemake hands over --configfile paths made absolute)."""
    text = str(path)
    if os.path.isabs(text):
        relative = os.path.relpath(text)
        if not relative.startswith(".."):
            return relative
    return text


def read_yaml(path: str | Path) -> dict:
    """A YAML config file's top-level mapping; every way the file can fail to be one is a
    one-line ConfigError naming the file (and the line) and the fix."""
    name = shown_path(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {name} not found; fix the path, or create it from a preset in "
            "config/presets/"
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"config file {name} is not UTF-8 text (byte {e.start}); save it as UTF-8"
        ) from None
    except OSError as e:
        raise ConfigError(
            f"config file {name} cannot be read ({e.strerror}); fix the path"
        ) from None
    loader = _UniqueKeyLoader(text)
    loader.name = name
    try:
        content = loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError(_syntax_error(name, e)) from None
    finally:
        loader.dispose()
    if content is None:
        raise ConfigError(
            f"config file {name} has no settings (it is empty or only comments); write the "
            "config's keys (models:, precisions:, scenarios:, ...), see config/README.md"
        )
    if not isinstance(content, dict):
        what = "a list" if isinstance(content, list) else f"a single value ({content!r:.40})"
        raise ConfigError(
            f"config file {name}: the top level is {what}, not a mapping of keys; write "
            "'key: value' lines (models:, precisions:, scenarios:, ...) starting in column 1, "
            "without a leading '- '"
        )
    return content


def _syntax_error(name: str, error: yaml.YAMLError) -> str:
    """One line: where PyYAML stopped, what it found, and the usual fix for that."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    opened = f" (opened on line {context_mark.line + 1})" if context_mark else ""
    if "\t" in problem or "'\\t'" in problem:
        fix = "indent with spaces, not tabs"
    elif context and "quoted scalar" in context:
        fix = f"close the quote{opened}"
    elif context and ("flow sequence" in context or "flow mapping" in context):
        fix = f"close the [ or {{{opened}"
    elif "constructor for the tag" in problem:
        fix = "remove the !tag (a config holds plain values) or quote the value"
    else:
        fix = "fix the indentation or quoting there"
    where = f"{name} line {mark.line + 1}" if mark else name
    problem = problem.replace("\n", " ")
    return f"{where}: could not parse YAML ({problem}); {fix}"
