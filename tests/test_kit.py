"""kit.py, the README's two commands: its cheap paths (the full set-up runs in CI from a fresh clone)."""

from __future__ import annotations

import subprocess
import sys


def _kit(root, *args):
    return subprocess.run([sys.executable, str(root / "kit.py"), *args], capture_output=True, text=True, timeout=60)


def test_help_lists_the_commands(root):
    out = _kit(root, "help")
    assert out.returncode == 0
    for cmd in ("repro", "test", "setup", "data", "lab"):
        assert f"python3 kit.py {cmd}" in out.stdout


def test_unknown_command_is_an_error(root):
    out = _kit(root, "reproduce")
    assert out.returncode == 2
    assert "unknown command 'reproduce'; commands: repro, test, setup, data, lab" in out.stderr


def test_ci_calls_the_test_command(root):
    ci = (root / ".ci" / "run").read_text()
    assert "python3 kit.py test" in ci
    readme = (root / "README.md").read_text()
    assert "python3 kit.py repro" in readme and "python3 kit.py test" in readme
