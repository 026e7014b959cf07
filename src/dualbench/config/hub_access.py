"""Whether a hub source (``hf:``, ``modelscope:``) can be had on this machine: from the local
cache, or else from the hub, whose host must answer a TCP connect within REACH_TIMEOUT_S.

Validation asks only where the jobs run on this machine (machine_fit), only for hub sources,
and reaches out only when the model is not already cached; each host is tried once per
validation. The fetch (dualbench.models.sources) downloads into the same caches, so a model
fetched once passes offline. Tests replace ``can_reach``: nothing here must touch the network
in a test.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

REACH_TIMEOUT_S = 2.5
_MODELSCOPE_DOMAIN = "www.modelscope.cn"


def can_reach(url: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host (or the HTTPS proxy that would carry it)
    opens within ``timeout`` seconds. The attempt runs in a daemon thread so that a slow name
    lookup, which socket timeouts do not bound, cannot hold validation up either."""
    host, port = _connect_target(url)
    opened: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened)


def _connect_target(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxied.hostname:
            return proxied.hostname, proxied.port or 80
    return host, parts.port or (80 if parts.scheme == "http" else 443)


def hub_problem(kind: str, ref: str, reached: dict[str, bool] | None = None) -> str | None:
    """Why the ``kind:ref`` hub source cannot be had here (one line ending in the fix), or
    None when it is cached or its hub answers. ``reached`` memoises hosts across models."""
    reached = {} if reached is None else reached
    if kind == "hf":
        return _hf_problem(ref, reached)
    if kind == "modelscope":
        return _modelscope_problem(ref, reached)
    return None


def _hf_problem(ref: str, reached: dict[str, bool]) -> str | None:
    from huggingface_hub import constants

    repo, _, revision = ref.partition("@")
    cache = constants.HF_HUB_CACHE
    if _hf_cached(repo, revision or None):
        return None
    where = f"hf:{ref} is not in the local Hugging Face cache ({cache})"
    get = f"hf download {repo}" + (f" --revision {revision}" if revision else "")
    local = f"download it where the hub is reachable ({get} --local-dir <dir>) and use local:<dir>"
    if constants.HF_HUB_OFFLINE:
        return f"{where} and HF_HUB_OFFLINE is set, so it cannot be downloaded; unset it or {local}"
    endpoint = constants.ENDPOINT
    if _reachable(endpoint, reached):
        return None
    return (
        f"{where} and this machine cannot reach {endpoint} (no connection within "
        f"{REACH_TIMEOUT_S:g} s); {local}, or set HF_ENDPOINT to a mirror or HTTPS_PROXY to a "
        "proxy this machine can reach"
    )


def _hf_cached(repo: str, revision: str | None) -> bool:
    """huggingface_hub's own answer, without the network: a cached snapshot of ``revision``
    with a config.json (what snapshot_download returns offline)."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(repo, revision=revision, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError, an incomplete snapshot, a malformed id
        return False
    return (Path(path) / "config.json").is_file()


def _modelscope_problem(ref: str, reached: dict[str, bool]) -> str | None:
    cache = Path(os.environ.get("MODELSCOPE_CACHE") or "~/.cache/modelscope/hub").expanduser()
    # modelscope keeps a model under <cache>/models/<org>/<name> (older releases: directly
    # under <cache>), with "." in names written "___".
    names = {ref, ref.replace(".", "___")}
    if any(
        (cache / sub / name / "config.json").is_file() for sub in ("models", ".") for name in names
    ):
        return None
    domain = os.environ.get("MODELSCOPE_DOMAIN") or _MODELSCOPE_DOMAIN
    endpoint = domain if "://" in domain else f"https://{domain}"
    if _reachable(endpoint, reached):
        return None
    return (
        f"modelscope:{ref} is not in the local ModelScope cache ({cache}) and this machine "
        f"cannot reach {endpoint} (no connection within {REACH_TIMEOUT_S:g} s); download it "
        "where the hub is reachable (modelscope download --model "
        f"{ref} --local_dir <dir>) and use local:<dir>, or set HTTPS_PROXY to a proxy this "
        "machine can reach"
    )


def _reachable(endpoint: str, reached: dict[str, bool]) -> bool:
    if endpoint not in reached:
        reached[endpoint] = can_reach(endpoint)
    return reached[endpoint]
