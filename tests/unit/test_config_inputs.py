"""The last bad-input gaps (issue 21 item 7), each ending in one line naming the key or file
and the fix: a config file that is not a YAML mapping (checked before Snakemake's own loader
sees it), the ``allocator`` grammar, and a hub source this machine cannot have. Nothing here
touches the network: the hub's reachability is replaced in every test."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from dualbench import config
from dualbench.config import ConfigError, hub_access
from dualbench.hardware import Accelerator
from tests.helpers import REPO, fake_machine

TINY = "synthetic:llama-3.2-tiny"
# The real check, before the autouse fixture below replaces it in every test.
REAL_CAN_REACH = hub_access.can_reach


def base(**overrides) -> dict:
    cfg = {
        "models": {"A": {"source": TINY}, "B": {"source": TINY}},
        "precisions": ["bf16"],
        "scenarios": {"s": {"prompt_tokens": 8, "new_tokens": 4}},
    }
    cfg.update(overrides)
    return cfg


def refused(cfg: dict, machine=None) -> str:
    with pytest.raises(ConfigError) as info:
        config.validate(cfg, machine)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every reachability question is answered here (False unless a test says otherwise)
    and recorded."""
    asked: list[str] = []

    def fake(url, timeout=hub_access.REACH_TIMEOUT_S):
        asked.append(url)
        return fake.answer

    fake.answer = False
    monkeypatch.setattr(hub_access, "can_reach", fake)
    return fake, asked


# --- config files that are not a YAML mapping ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models:\n  A: {source: x}\nprecisions: [bf16]\nscenarios:\n  s:\n"
            "    prompt_tokens: 8\n      new_tokens: 4\n",
            "c.yaml line 7: could not parse YAML (mapping values are not allowed here); fix the "
            "indentation or quoting there",
        ),
        (
            "models:\n\tA: {source: x}\n",
            "c.yaml line 2: could not parse YAML (found character '\\t' that cannot start any "
            "token); indent with spaces, not tabs",
        ),
        (
            "precisions: [bf16\nmodels: {}\n",
            "c.yaml line 2: could not parse YAML (expected ',' or ']', but got ':'); close the "
            "[ or { (opened on line 1)",
        ),
        (
            'notes: "unfinished\n',
            "c.yaml line 2: could not parse YAML (found unexpected end of stream); close the "
            "quote (opened on line 1)",
        ),
        (
            "",
            "config file c.yaml has no settings (it is empty or only comments); write the "
            "config's keys (models:, precisions:, scenarios:, ...), see config/README.md",
        ),
        ("# nothing yet\n", "config file c.yaml has no settings (it is empty or only comments)"),
        (
            "- models: {}\n- precisions: [bf16]\n",
            "config file c.yaml: the top level is a list, not a mapping of keys; write "
            "'key: value' lines (models:, precisions:, scenarios:, ...) starting in column 1, "
            "without a leading '- '",
        ),
        ("just words\n", "config file c.yaml: the top level is a single value ('just words')"),
    ],
)
def test_a_file_that_is_not_a_mapping_is_one_line(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path / "c.yaml")  # absolute, as Snakemake hands --configfile over
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(expected)


def test_unreadable_config_files_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^config file missing.yaml not found; fix the path"):
        config.load("missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"notes: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1.yaml is not UTF-8 text .*save it as UTF-8"):
        config.load("latin1.yaml")


def _dry_run(workdir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "-n", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def workdir(tmp_path):
    for name in ("Snakefile", "workflow"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "config").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "device: cpu\nmodels:\n  A: {source: x}\nscenarios:\n  s: {prompt_tokens: 8\n"
            "    new_tokens: 4}\n",
            "config/config.yaml line 6: could not parse YAML (",
        ),
        ("", "config file config/config.yaml has no settings"),
        ("- device: cpu\n", "config file config/config.yaml: the top level is a list"),
    ],
)
def test_snakemake_ends_a_broken_config_file_in_our_line(workdir, text, expected):
    (workdir / "config" / "config.yaml").write_text(text)
    proc = _dry_run(workdir)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dualbench: config error: {expected}"), proc.stderr[-2000:]
    for noise in ("Traceback", "WorkflowError"):
        assert noise not in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()


def test_snakemake_without_any_config_file_says_so(workdir):
    proc = _dry_run(workdir)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "dualbench: config error: config file config/config.yaml not found; fix the path, or "
        "create it from a preset in config/presets/"
    )


def test_a_configfile_alone_needs_no_default_config_file(workdir):
    (workdir / "mine.yaml").write_text(yaml.safe_dump(base(device="cpu")))
    proc = _dry_run(workdir, "--configfile", "mine.yaml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dualbench: config error" not in proc.stderr


# --- allocator --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "setting"),
    [
        ("npu", "expandable_segments:True"),
        ("npu", "max_split_size_mb:32,garbage_collection_threshold:0.6"),
        ("npu", "expandable_segments:True,base_addr_aligned_kb:16,segment_size_mb:40"),
        ("npu", "page_size:1g"),
        ("npu", "roundup_power2_divisions:[256:1,512:2,1024:4,>:8]"),
        ("cuda", "max_split_size_mb:512, garbage_collection_threshold:0.8"),
        ("cuda", "backend:cudaMallocAsync"),
        ("cuda", "expandable_segments:True,roundup_power2_divisions:4,"),
        ("cuda", "pinned_use_cuda_host_register:True,pinned_num_register_threads:8"),
        ("auto", "expandable_segments:False"),
    ],
)
def test_documented_allocator_settings_are_accepted(device, setting):
    cfg = config.validate(base(device=device, allocator=setting))
    assert cfg["allocator"] == setting and cfg["resolved"]["warnings"] == []


@pytest.mark.parametrize(
    ("device", "setting", "expected"),
    [
        (
            "npu",
            "expandable_segment:True",
            "allocator: unknown key 'expandable_segment' (in expandable_segment:True); "
            "PYTORCH_NPU_ALLOC_CONF keys are base_addr_aligned_kb, expandable_segments, ",
        ),
        (
            "npu",
            "expandable_segments:true",
            "allocator: expandable_segments:true is not valid; expandable_segments takes True "
            "or False (capitalised)",
        ),
        (
            "cuda",
            "max_split_size_mb:10",
            "allocator: max_split_size_mb:10 is not valid; max_split_size_mb takes an integer "
            ">= 20",
        ),
        (
            "cuda",
            "garbage_collection_threshold:1.5",
            "allocator: garbage_collection_threshold:1.5 is not valid; "
            "garbage_collection_threshold takes a number strictly between 0 and 1, e.g. 0.8",
        ),
        ("cuda", "roundup_power2_divisions:3", "allocator: roundup_power2_divisions:3 is not"),
        ("cuda", "roundup_power2_divisions:[100:2]", "roundup_power2_divisions:[100:2] is not"),
        (
            "cuda",
            "backend:cudaMalloc",
            "allocator: backend:cudaMalloc is not valid; backend takes native or cudaMallocAsync",
        ),
        (
            "npu",
            "backend:cudaMallocAsync",
            "allocator: backend is a PYTORCH_CUDA_ALLOC_CONF key, but on npu the setting "
            "becomes PYTORCH_NPU_ALLOC_CONF, which does not take it; remove "
            "backend:cudaMallocAsync",
        ),
        ("cuda", "page_size:1g", "allocator: page_size is a PYTORCH_NPU_ALLOC_CONF key"),
        (
            "npu",
            "base_addr_aligned_kb:32",
            "base_addr_aligned_kb:32 is not valid; base_addr_aligned_kb takes an integer from "
            "0 to 16",
        ),
        (
            "npu",
            "expandable_segments:True,max_split_size_mb:512",
            "allocator: expandable_segments:True cannot be combined with max_split_size_mb on "
            "an NPU (torch_npu); drop max_split_size_mb or set expandable_segments:False",
        ),
        ("npu", "page_size:1g,expandable_segments:True", "page_size combines with no other"),
        (
            "cuda",
            "expandable_segments=True",
            "allocator: 'expandable_segments=True' is not a key:value pair; write "
            "comma-separated key:value pairs",
        ),
        ("cuda", "roundup_power2_divisions:[256:1", "has an unbalanced [ or ]"),
        (
            "cuda",
            "max_split_size_mb:64,max_split_size_mb:128",
            "allocator: max_split_size_mb is given twice",
        ),
        ("auto", "foo:1", "PYTORCH_NPU_ALLOC_CONF or PYTORCH_CUDA_ALLOC_CONF keys are"),
    ],
)
def test_a_bad_allocator_setting_names_key_value_and_form(device, setting, expected):
    message = refused(base(device=device, allocator=setting))
    assert message.startswith("allocator: ") and expected in message


def test_the_allocator_is_checked_for_the_device_auto_resolves_to():
    npus = fake_machine(npu=(Accelerator(0, "910B2C"), Accelerator(1, "910B2C")), torch_npu=True)
    cfg = base(allocator="backend:cudaMallocAsync")
    # Unresolved (a cluster's login node), auto may become either: a CUDA key is fine.
    assert config.validate(cfg)["allocator"] == "backend:cudaMallocAsync"
    assert refused(cfg, npus).startswith("allocator: backend is a PYTORCH_CUDA_ALLOC_CONF key")
    gpu = fake_machine(cuda=(Accelerator(0, "NVIDIA H100", (9, 0)),), cpu_only_torch=False)
    assert config.validate(cfg, gpu)["resolved"]["device"] == "cuda"


def test_an_allocator_setting_on_a_cpu_is_one_warning():
    warning = (
        "allocator: 'expandable_segments:True' has no effect on a CPU (it becomes "
        "PYTORCH_NPU_ALLOC_CONF or PYTORCH_CUDA_ALLOC_CONF on an accelerator); remove it or "
        "run on npu or cuda"
    )
    cfg = base(allocator="expandable_segments:True")
    # device: auto resolved to this machine's CPU, and device: cpu as written (no machine).
    assert config.validate(cfg, fake_machine())["resolved"]["warnings"] == [warning]
    assert config.validate({**cfg, "device": "cpu"})["resolved"]["warnings"] == [warning]
    assert config.validate(base(), fake_machine())["resolved"]["warnings"] == []
    gpu = fake_machine(cuda=(Accelerator(0, "NVIDIA H100", (9, 0)),), cpu_only_torch=False)
    assert config.validate(cfg, gpu)["resolved"]["warnings"] == []


# --- hub sources this machine cannot have ----------------------------------------------------


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, online mode; ``add(repo)`` caches a snapshot as
    huggingface_hub lays one out (refs/main -> snapshots/<commit>)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")

    def add(repo: str, revision: str = "main") -> None:
        folder = cache / f"models--{repo.replace('/', '--')}"
        commit = "0123456789abcdef0123456789abcdef01234567"
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / revision).write_text(commit)
        snapshot = folder / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        (snapshot / "config.json").write_text("{}")
        (snapshot / "model.safetensors").write_bytes(b"")

    add.cache = cache
    return add


def hub_config(*sources: str) -> dict:
    return base(models={n: {"source": s} for n, s in zip("AB", sources, strict=True)})


def test_an_uncached_hf_model_on_an_unreachable_hub_is_refused(hf_cache, no_network):
    _, asked = no_network
    message = refused(hub_config("hf:meta-llama/Llama-3.2-1B", TINY), fake_machine())
    assert message == (
        "models.A.source: hf:meta-llama/Llama-3.2-1B is not in the local Hugging Face cache "
        f"({hf_cache.cache}) and this machine cannot reach https://huggingface.co (no "
        "connection within 2.5 s); download it where the hub is reachable (hf download "
        "meta-llama/Llama-3.2-1B --local-dir <dir>) and use local:<dir>, or set HF_ENDPOINT "
        "to a mirror or HTTPS_PROXY to a proxy this machine can reach"
    )
    assert asked == ["https://huggingface.co"]


def test_a_reachable_hub_is_asked_once_for_all_models(hf_cache, no_network):
    fake, asked = no_network
    fake.answer = True
    cfg = hub_config("hf:meta-llama/Llama-3.2-1B", "hf:meta-llama/Llama-3.2-3B@main")
    assert config.validate(cfg, fake_machine())["models"]["B"]["source"].endswith("@main")
    assert asked == ["https://huggingface.co"]


def test_a_cached_hf_model_needs_no_network(hf_cache, no_network, monkeypatch):
    _, asked = no_network
    hf_cache("meta-llama/Llama-3.2-1B")
    config.validate(hub_config("hf:meta-llama/Llama-3.2-1B", TINY), fake_machine())
    # Offline mode too, as the fetch then reads the same cache.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    config.validate(hub_config("hf:meta-llama/Llama-3.2-1B", TINY), fake_machine())
    assert asked == []
    # Another revision is another snapshot, not cached.
    message = refused(hub_config("hf:meta-llama/Llama-3.2-1B@v2", TINY), fake_machine())
    assert message.startswith("models.A.source: hf:meta-llama/Llama-3.2-1B@v2 is not in")
    assert "(hf download meta-llama/Llama-3.2-1B --revision v2 --local-dir <dir>)" in message


def test_hf_offline_mode_without_the_model_cached_is_refused(hf_cache, no_network, monkeypatch):
    from huggingface_hub import constants

    _, asked = no_network
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    message = refused(hub_config(TINY, "hf:org/model"), fake_machine())
    assert message.startswith(
        "models.B.source: hf:org/model is not in the local Hugging Face cache ("
    )
    assert "and HF_HUB_OFFLINE is set, so it cannot be downloaded; unset it or download" in message
    assert message.endswith("and use local:<dir>")
    assert asked == []


def test_a_mirror_endpoint_is_the_host_asked(hf_cache, no_network, monkeypatch):
    from huggingface_hub import constants

    _, asked = no_network
    monkeypatch.setattr(constants, "ENDPOINT", "https://hf-mirror.example")
    assert "cannot reach https://hf-mirror.example" in refused(
        hub_config("hf:org/model", TINY), fake_machine()
    )
    assert asked == ["https://hf-mirror.example"]


def test_modelscope_sources_are_checked_against_their_cache_and_hub(
    tmp_path, monkeypatch, no_network
):
    _, asked = no_network
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    monkeypatch.delenv("MODELSCOPE_DOMAIN", raising=False)
    message = refused(hub_config("modelscope:LLM-Research/Llama-3.2-1B", TINY), fake_machine())
    assert message.startswith(
        "models.A.source: modelscope:LLM-Research/Llama-3.2-1B is not in the local ModelScope "
        f"cache ({tmp_path / 'ms'}) and this machine cannot reach https://www.modelscope.cn"
    )
    assert "and use local:<dir>" in message
    model = tmp_path / "ms" / "models" / "LLM-Research" / "Llama-3___2-1B"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    config.validate(hub_config("modelscope:LLM-Research/Llama-3.2-1B", TINY), fake_machine())
    assert asked == ["https://www.modelscope.cn"]


def test_no_hub_question_without_a_hub_source_or_off_this_machine(hf_cache, no_network):
    _, asked = no_network
    config.validate(hub_config(TINY, TINY), fake_machine())
    # machine None: the jobs are submitted to a cluster, whose nodes are not this machine.
    config.validate(hub_config("hf:org/model", "modelscope:org/model"))
    assert asked == []


# --- the reachability check itself (loopback only) --------------------------------------------


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def real_can_reach(monkeypatch):
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return REAL_CAN_REACH


def test_can_reach_opens_a_tcp_connection(listener, real_can_reach):
    assert real_can_reach(f"https://127.0.0.1:{listener}", timeout=1)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert not real_can_reach(f"https://127.0.0.1:{port}", timeout=1)


def test_can_reach_goes_through_the_https_proxy(listener, real_can_reach, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listener}")
    # The hub's name is never looked up: the connection goes to the (loopback) proxy.
    monkeypatch.setattr(socket, "getaddrinfo", _no_lookup(socket.getaddrinfo))
    assert real_can_reach("https://huggingface.co", timeout=1)


def test_can_reach_is_bounded_even_when_the_lookup_hangs(real_can_reach, monkeypatch):
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(10)
        raise OSError("released")

    monkeypatch.setattr(socket, "create_connection", hang)
    started = time.monotonic()
    assert not real_can_reach("https://huggingface.co", timeout=0.2)
    assert time.monotonic() - started < 1
    release.set()


def _no_lookup(original):
    def lookup(host, *args, **kwargs):
        assert host == "127.0.0.1", f"looked up {host}"
        return original(host, *args, **kwargs)

    return lookup
