"""Errors a user can cause, and the one way they end a command: one line on stderr.

Every stage raises its own subclass of ``UserError`` where the mistake is found (ConfigError,
SourceError, DeviceError, ConversionError, Int4Error), with a message that names what is wrong
and how to fix it. The CLI and the workflow scripts wrap their work in ``user_errors_exit``;
anything that is not a UserError is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys


class UserError(Exception):
    """A mistake the user can fix (config, model source, device, artifact); str() is one line
    naming what is wrong and the fix."""


# One subclass per stage, so a caller can tell where the mistake is. The second base is what
# each was before the common base existed, so callers that catch that still catch it.


class ConfigError(UserError, ValueError):
    """A configuration mistake: the message names the key and the fix."""


class SourceError(UserError, RuntimeError):
    """A model that cannot be had: what failed and what to do."""


class DeviceError(UserError, RuntimeError):
    """A device that cannot be used as asked (unknown kind, missing driver, bad slot)."""


class ConversionError(UserError, RuntimeError):
    """A precision conversion that cannot be made."""


class Int4Error(UserError, RuntimeError):
    """An INT4 problem: unsupported chip, shape or artifact."""


@contextlib.contextmanager
def user_errors_exit(prefix: str = "dualbench"):
    """A UserError raised inside ends the process with ``prefix: message`` and exit code 1."""
    try:
        yield
    except UserError as error:
        print(f"{prefix}: {error}", file=sys.stderr)
        sys.exit(1)
