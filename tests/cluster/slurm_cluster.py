"""A real one-node Slurm cluster for the profile tests: munge, slurmctld and slurmd started
from a slurm.conf generated in a temporary directory, stopped by pid at the end.

Two facts shape it:
- The executor's job steps drop every SLURM_* variable except the job's identity before they
  call `srun` (snakemake_executor_plugin_slurm_jobstep, `keep_slurm`), SLURM_CONF included.
  So the config must reach `srun` inside a job the way it does on real clusters without a
  shared /etc/slurm: slurmd runs *configless* (`--conf-server`), caches the controller's
  files and links them at /run/slurm/conf, where Slurm's commands look when SLURM_CONF is
  unset. Outside jobs, the tests set SLURM_CONF.
- A configless slurmd fetches its config before it can read AuthInfo, so munge must listen on
  its default socket (/run/munge/munge.socket.2): an already running munged is used as it is,
  otherwise one is started there with this cluster's own key.

Accounting is off (no slurmdbd), as on the small clusters where the plugin's default `sacct`
status query hangs: the profile must work here. MinJobAge keeps finished jobs visible to
`squeue` for 300 s (Slurm's default, spelled out because the status query relies on it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
CONFIGLESS_LINK = Path("/run/slurm/conf")
PARTITION = "bench"
# A GRES with no device files, as gres.conf allows: Slurm counts and allocates it like NPUs.
NPUS = 2


class ClusterUnavailable(Exception):
    """Why a Slurm cluster cannot start on this machine (the tests skip with this reason)."""


def missing_commands() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None]


def install_packages() -> None:
    """Debian's Slurm and munge, where the machine permits: root and apt-get."""
    if not missing_commands():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterUnavailable(
            f"{', '.join(missing_commands())} not installed, and installing needs root and "
            f"apt-get: apt-get install {' '.join(PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine may not have the package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ClusterUnavailable(f"apt-get install failed: {done.stderr.strip()[-300:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_memory_mb() -> int:
    """A little under the machine's memory: slurmd drains a node that reports less than its
    configured RealMemory."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 512
    raise ClusterUnavailable("cannot read MemTotal from /proc/meminfo")


@dataclass
class SlurmCluster:
    """One node (this machine) in one partition, with NPUS fake NPUs as GRES `npu`."""

    root: Path
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    cpus: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a client on the 'login node' needs: the config."""
        return {"SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        for sub in ("etc", "state", "spool", "log", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        ctld_port, slurmd_port = free_port(), free_port()
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=dualbenchtest",
                    f"SlurmctldHost={self.node}(127.0.0.1)",
                    f"SlurmctldPort={ctld_port}",
                    f"SlurmdPort={slurmd_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"StateSaveLocation={r}/state",
                    f"SlurmdSpoolDir={r}/spool",
                    f"SlurmctldPidFile={r}/slurmctld.pid",
                    f"SlurmdPidFile={r}/slurmd.pid",
                    f"SlurmctldLogFile={r}/log/slurmctld.log",
                    f"SlurmdLogFile={r}/log/slurmd.log",
                    # No cgroups in a container: track job processes by their parent pids.
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "SlurmctldParameters=enable_configless",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "MinJobAge=300",
                    # Start pending jobs within a second, not the default minute.
                    "SchedulerParameters=sched_interval=1",
                    # scancel: SIGTERM, then SIGKILL after this many seconds.
                    "KillWait=10",
                    "GresTypes=npu",
                    f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                    f"RealMemory={node_memory_mb()} Gres=npu:{NPUS} State=UNKNOWN",
                    f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        (self.root / "etc" / "gres.conf").write_text(
            f"NodeName={self.node} Name=npu Count={NPUS}\n"
        )

    def start_munge(self) -> None:
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return  # a munged already answers on the default socket
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        pid_file = self.root / "munge" / "munged.pid"
        started = subprocess.run(
            [
                "munged",
                "--force",  # it runs as root here, which munged otherwise refuses
                f"--key-file={key}",
                f"--pid-file={pid_file}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={self.root / 'munge' / 'seed'}",
            ],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise ClusterUnavailable(f"munged did not start: {started.stderr.strip()}")
        self.pids["munged"] = int(pid_file.read_text())

    def start(self, timeout_s: float = 30) -> None:
        if os.geteuid() != 0:
            raise ClusterUnavailable("starting slurmctld and slurmd as one node needs root")
        install_packages()
        self.write_config()
        self.start_munge()
        env = {**os.environ, **self.env}
        for command in (["slurmctld", "-i"], ["slurmd"]):
            if command[0] == "slurmd":
                # Configless: see the module's docstring. It must not see SLURM_CONF.
                command += ["--conf-server", self.controller_address()]
                env = {k: v for k, v in env.items() if k != "SLURM_CONF"}
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                self.stop()
                raise ClusterUnavailable(f"{command[0]} failed: {done.stderr.strip()[-300:]}")
            self.pids[command[0]] = self.wait_for_pid(command[0], timeout_s)
        try:
            self.wait_until_idle(timeout_s)
        except TimeoutError as why:
            self.stop()
            raise ClusterUnavailable(f"{why}: {self.log_tail()}") from None

    def controller_address(self) -> str:
        for line in self.conf.read_text().splitlines():
            if line.startswith("SlurmctldPort="):
                return f"127.0.0.1:{line.split('=')[1]}"
        raise AssertionError("slurm.conf has no SlurmctldPort")

    def wait_for_pid(self, daemon: str, timeout_s: float) -> int:
        pid_file = self.root / f"{daemon}.pid"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if pid_file.exists() and pid_file.read_text().strip():
                return int(pid_file.read_text())
            time.sleep(0.1)
        self.stop()
        raise ClusterUnavailable(f"{daemon} wrote no pid file: {self.log_tail(daemon)}")

    def wait_until_idle(self, timeout_s: float) -> None:
        """Until the node runs no job and no job's processes are left (state `idle`, not
        `mix`, `alloc` or `comp`)."""
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-n", self.node, "-o", "%t").stdout.strip()
            if state == "idle":
                return
            time.sleep(0.3)
        raise TimeoutError(f"node {self.node} is {state!r}, not idle, after {timeout_s} s")

    def log_tail(self, daemon: str = "slurmd") -> str:
        log = self.root / "log" / f"{daemon}.log"
        return log.read_text()[-800:] if log.exists() else "(no log)"

    def run(self, *command: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, env={**os.environ, **self.env}, capture_output=True, text=True, check=check
        )

    def queue(self) -> list[dict[str, str]]:
        """Every job the controller still knows (finished ones for MinJobAge)."""
        out = self.run("squeue", "--states=all", "-h", "-o", "%i|%j|%T|%k").stdout
        keys = ("id", "name", "state", "comment")
        return [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]

    def stop(self) -> None:
        for daemon in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(daemon, None)
            if pid is not None:
                stop_process(pid)
        # Left behind by slurmd; a later configless slurmd replaces it, but a dangling link
        # into a deleted temporary directory must not outlive the tests.
        if CONFIGLESS_LINK.is_symlink() and str(os.readlink(CONFIGLESS_LINK)).startswith(
            str(self.root)
        ):
            CONFIGLESS_LINK.unlink()


def stop_process(pid: int, timeout_s: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
