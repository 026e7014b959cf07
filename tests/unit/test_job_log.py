"""A job's stderr reaches both the terminal and the rule's log file, errors included."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from dualbench.errors import ConfigError, user_errors_exit
    from dualbench.job_log import tee_stderr

    with tee_stderr(sys.argv[1]), user_errors_exit():
        print("progress line", file=sys.stderr)
        if sys.argv[2] == "user":
            raise ConfigError("scenarios.short: bad value; fix it")
        if sys.argv[2] == "bug":
            raise KeyError("a bug")
    """
)


def run(tmp_path, mode: str):
    log = tmp_path / "logs" / "job.log"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), mode], capture_output=True, text=True, timeout=60
    )
    return proc, log.read_text()


def test_progress_goes_to_terminal_and_log(tmp_path):
    proc, log = run(tmp_path, "ok")
    assert proc.returncode == 0
    assert "progress line" in proc.stderr and "progress line" in log


def test_a_user_error_is_one_line_in_both(tmp_path):
    proc, log = run(tmp_path, "user")
    assert proc.returncode == 1
    line = "dualbench: scenarios.short: bad value; fix it"
    assert proc.stderr.strip().splitlines()[-1] == line
    assert log.strip().splitlines()[-1] == line
    assert "Traceback" not in proc.stderr + log


def test_a_bug_leaves_its_traceback_in_the_log(tmp_path):
    proc, log = run(tmp_path, "bug")
    assert proc.returncode == 1
    assert "KeyError: 'a bug'" in log and "Traceback" in log
    assert "KeyError: 'a bug'" in proc.stderr
