"""Lint: `ruff check` (pyflakes, the pycodestyle errors and import order) on the package, tests, notebooks and kit."""

from __future__ import annotations

import subprocess
import sys


def test_ruff_check_is_clean(root):
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=root,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
