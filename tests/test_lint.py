"""Lint: `ruff check` (pyflakes, pycodestyle errors, import order) and `ruff format --check`; mypy on the package."""

from __future__ import annotations

import subprocess
import sys


def test_ruff_check_is_clean(root):
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_ruff_format_is_clean(root):
    """`ruff format --check`: the package, tests, benchmarks and kit.py are formatted (the notebooks' sources
    are left as written, see pyproject.toml)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_mypy_is_clean(root):
    """mypy at a basic level on the package and the benchmarks (configuration: pyproject.toml's [tool.mypy])."""
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
