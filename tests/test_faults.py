"""Faults during a real `dvc repro` at smoke size (issue 12): `kill -9` of dvc and Ctrl-C in the middle of a
stage leave no process behind and no half-written output, and the next `dvc repro` re-runs only the
interrupted stage and reproduces a clean run byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import run, tool_env
from .test_dvc_pipeline import _set_params

pytestmark = pytest.mark.slow

FAULT = {
    "data": {"n_train": 256, "n_test": 128},
    "train": {"seeds": [0], "epochs": 1},
    "nopeek": {"alpha_dcor": [30]},
    "noise": {"scale": [2]},
    # the attacked stage must still be running when the fault comes: a few hundred decoder steps
    "attack": {"max_steps": 600, "eval_every": 50, "patience": 50, "leak_sweep": [0.25], "classifier_epochs": 1},
}
KEPT = ["dvc.lock", "results/summary.csv", "results/metrics.json", "results/report.md", "results/records"]


def _pids_in(repo: Path) -> list[int]:
    """Processes whose working folder or command line is inside ``repo`` (runner, kernel, dvc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(proc.name) != os.getpid() and (cwd.startswith(str(repo)) or str(repo) in cmd):
            found.append(int(proc.name))
    return found


def _kernel_running(repo: Path) -> bool:
    for pid in _pids_in(repo):
        try:
            if b"ipykernel_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def _snapshot(repo: Path) -> dict[str, bytes]:
    out = {}
    for name in KEPT:
        path = repo / name
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                out[str(f.relative_to(repo))] = f.read_bytes()
    return out


def _start(repo: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["dvc", *args],
        cwd=repo,
        # DVC runs the stage's cmd through $SHELL: /bin/sh (dash) does not exec a lone command, so the runner's
        # parent is a shell that outlives a killed dvc (what CI hit); bash is covered in test_supervise.py
        env={**tool_env(repo), "SHELL": "/bin/sh"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the test's "terminal"
    )


def _wait_for_kernel(repo: Path, proc: subprocess.Popen, then: float, timeout: float = 120) -> None:
    """Wait until the stage's kernel process exists, then ``then`` seconds more."""
    end = time.monotonic() + timeout
    while not _kernel_running(repo):
        assert proc.poll() is None, f"dvc ended before the stage's kernel started:\n{proc.stdout.read()}"
        assert time.monotonic() < end, "the stage's kernel did not start"
        time.sleep(0.05)
    time.sleep(then)


def _wait_until_gone(repo: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while _pids_in(repo):
        assert time.monotonic() < end, f"processes left behind: {_pids_in(repo)}"
        time.sleep(0.5)


def _rerun_runs_only_the_stage(repo: Path, clean: dict[str, bytes]) -> None:
    again = run(["dvc", "repro"], repo).stdout
    ran = sorted(set(line.split("'")[1] for line in again.splitlines() if line.startswith("Running stage")))
    assert ran == ["attack_baseline"], again
    assert _snapshot(repo) == clean


def test_kill_and_ctrl_c_mid_stage_then_a_rerun_matches_a_clean_run(repo_copy):
    repo = repo_copy
    _set_params(repo, FAULT)
    run(["dvc", "repro"], repo)
    clean = _snapshot(repo)

    # kill -9 of dvc at two moments: as the stage's kernel starts (ipykernel ignores SIGINT until it executes a
    # cell, so the runner must stop the stage itself) and in the middle of the attack's training loop
    for then in (0.0, 3.0):
        dvc = _start(repo, "repro", "-f", "-s", "attack_baseline")
        _wait_for_kernel(repo, dvc, then)
        dvc.send_signal(signal.SIGKILL)
        dvc.wait(timeout=30)
        _wait_until_gone(repo)
        assert not (repo / "results" / "attacks" / "baseline").exists(), f"half-written output (kill at +{then} s)"
        _rerun_runs_only_the_stage(repo, clean)

    # Ctrl-C (SIGINT to the whole foreground process group, as a terminal sends it)
    dvc = _start(repo, "repro", "-f", "-s", "attack_baseline")
    _wait_for_kernel(repo, dvc, 3.0)
    os.killpg(dvc.pid, signal.SIGINT)
    out, _ = dvc.communicate(timeout=60)
    assert dvc.returncode != 0
    assert "interrupted; partial outputs of stage attack_baseline removed" in out, out
    assert "Traceback" not in out, out
    _wait_until_gone(repo)
    _rerun_runs_only_the_stage(repo, clean)
