"""Shared fixtures. Slow tests (notebooks, nbval, the DVC pipeline) work in a throw-away copy of
the repository so they never touch the checkout's results."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _root_env(monkeypatch):
    monkeypatch.setenv("NOPEEK_ROOT", str(ROOT))
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_split():
    """A small real split of the embedded sample (materialised if needed)."""
    from nopeek_repro import data, paths

    raw = data.materialise("mnist-sample", ROOT / "data")
    assert raw == ROOT / "data" / paths.DATA_FILE
    return data.prepare(raw, test_fraction=0.2, seed=0, n_train=192, n_test=64)


def tool_env(repo: Path) -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first, the copy's package first."""
    env = dict(os.environ)
    env.pop("NOPEEK_ROOT", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo)
    env["DVC_NO_ANALYTICS"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def copy_repo(dest: Path) -> Path:
    """Copy the checkout's tracked and untracked-but-not-ignored files, plus data/, into dest."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    from nopeek_repro import data

    data.materialise("mnist-sample", dest / "data")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    run(["dvc", "commit", "--force", "--quiet", "data.dvc"], dest)  # as kit.py's set-up does
    return dest


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    return copy_repo(tmp_path / "repo")


def run(
    cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=cwd, env={**tool_env(cwd), **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc
