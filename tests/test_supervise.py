"""The stage runner's supervision (nopeek_repro/supervise.py) on real processes: who the owner is behind a
``sh -c`` shell, and that a runner stops when its owner is killed even though its own parent (the shell)
lives on. tests/test_faults.py does the same through a real ``dvc repro``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nopeek_repro import supervise

from .conftest import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from nopeek_repro import supervise
    flag = Path(sys.argv[1])
    supervise.end_with_owner()
    flag.write_text("ready")
    try:
        time.sleep(60)
        flag.write_text("slept")
    except KeyboardInterrupt:
        flag.write_text("stopped")
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _wait_for(path: Path, text: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not (path.exists() and path.read_text() == text):
        assert time.monotonic() < end, f"{path.name} says {path.read_text() if path.exists() else None!r}, not {text!r}"
        time.sleep(0.05)


def test_the_owner_behind_a_c_shell_is_the_shells_parent():
    cmd = f"{sys.executable} -c 'from nopeek_repro import supervise; print(supervise.owner()[0])'; true"
    out = subprocess.run(["sh", "-c", cmd], env=_env(), capture_output=True, text=True, check=True).stdout
    assert int(out) == os.getpid()


def test_without_a_shell_the_parent_itself_is_watched_by_the_kernel():
    cmd = "from nopeek_repro import supervise; print(supervise.owner())"
    out = subprocess.run([sys.executable, "-c", cmd], env=_env(), capture_output=True, text=True, check=True).stdout
    assert out.strip() == "None"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_a_runner_behind_a_shell_stops_when_its_owner_is_killed(tmp_path, shell):
    flag = tmp_path / "flag"
    (tmp_path / "child.py").write_text(CHILD)
    # the owner (here a python process, in dvc's place) runs the child through `SHELL -c "...; true"`: the
    # trailing command keeps even bash from exec-ing the child, so the child's parent is the shell
    owner_code = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([{shell!r}, '-c', {sys.executable!r} + ' child.py flag; true']); time.sleep(60)"
    )
    owner = subprocess.Popen([sys.executable, "-c", owner_code], cwd=tmp_path, env=_env(), start_new_session=True)
    try:
        _wait_for(flag, "ready")
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        _wait_for(flag, "stopped", timeout=10 * supervise.POLL_S + 5)
    finally:
        if owner.poll() is None:
            os.killpg(owner.pid, signal.SIGKILL)
