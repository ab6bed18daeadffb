"""kit.py, the README's two commands: its cheap paths (the full set-up runs in CI from a fresh clone)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from nopeek_repro import config


def _kit(root, *args):
    return subprocess.run([sys.executable, str(root / "kit.py"), *args], capture_output=True, text=True, timeout=60)


def test_help_lists_the_commands(root):
    out = _kit(root, "help")
    assert out.returncode == 0
    for cmd in ("repro", "test", "setup", "data", "lab", "study"):
        assert f"python3 kit.py {cmd}" in out.stdout


def test_unknown_command_is_an_error(root):
    out = _kit(root, "reproduce")
    assert out.returncode == 2
    assert "unknown command 'reproduce'; commands: repro, test, setup, data, lab, study" in out.stderr


def test_study_axis_is_checked_against_study_dvc_yaml_before_any_set_up(root):
    import yaml

    axes = yaml.safe_load((root / "study" / "dvc.yaml").read_text())["stages"]["study"]["foreach"]
    from nopeek_repro.study import AXIS_NAMES

    assert tuple(axes) == AXIS_NAMES
    out = _kit(root, "study", "--axis", "depth")
    assert out.returncode == 2
    assert f"study --axis: got 'depth'; allowed: {', '.join(axes)}" in out.stderr
    assert _kit(root, "study", "--axis").returncode == 2
    assert "unexpected arguments ['now']" in _kit(root, "study", "now").stderr


def test_ci_calls_the_test_command(root):
    ci = (root / ".ci" / "run").read_text()
    assert "python3 kit.py test" in ci
    readme = (root / "README.md").read_text()
    assert "python3 kit.py repro" in readme and "python3 kit.py test" in readme


def test_unknown_params_file_lists_the_named_sets(root):
    out = _kit(root, "repro", "--params", "params/nope.yaml")
    assert out.returncode == 2
    assert "--params params/nope.yaml: no such file; named parameter sets: params/cifar10-paper.yaml" in out.stderr


def _kit_module(repo):
    """kit.py of a repository copy, driving this test run's environment instead of a new .venv."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("kit_copy", repo / "kit.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    kit.BIN = Path(sys.executable).parent
    kit.PY = Path(sys.executable)
    kit.VENV = kit.BIN.parent
    return kit


@pytest.mark.slow
def test_named_parameter_set_runs_with_the_kit(repo_copy):
    """`kit.py repro --params FILE`'s steps on a shrunk cifar10-paper set and CIFAR-10 files in the real
    format: the file becomes params.yaml, data.dvc records the new data, a CPU estimate is printed,
    then the real `dvc repro` runs the whole pipeline."""
    import yaml

    from .conftest import run
    from .test_datasets import make_cifar
    from .test_paper_configs import tiny

    make_cifar(repo_copy / "data", per_batch=6, n_test=16)
    small = tiny("cifar10-paper", repo_copy)
    (repo_copy / "params" / "tiny.yaml").write_text(yaml.safe_dump(small.model_dump(), sort_keys=False))
    kit = _kit_module(repo_copy)
    kit.use_params(repo_copy / "params" / "tiny.yaml")
    assert config.load(repo_copy / "params.yaml") == small  # the default run with the overlay merged in
    assert "overlay params/tiny.yaml" in (repo_copy / "params.yaml").read_text().splitlines()[0]
    run(["dvc", "status", "-q", "data.dvc"], repo_copy)  # data.dvc records the CIFAR files now
    out = run(["dvc", "repro"], repo_copy)
    assert "Running stage 'train_nopeek@10000'" in out.stdout
    table = pd.read_csv(repo_copy / "results" / "summary.csv")
    assert table.run.tolist() == ["baseline", "nopeek-a10000", "noise-b0.5"]
    assert "Data: cifar10" in (repo_copy / "results" / "report.md").read_text()


def test_bad_params_file_leaves_params_yaml_alone(tmp_path, root):
    import shutil

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("kit.py", "params.yaml", "dvc.yaml"):
        shutil.copy(root / name, repo / name)
    (repo / "params").mkdir()
    (repo / "params" / "bad.yaml").write_text((root / "params.yaml").read_text().replace("epochs: 5", "epochs: 0"))
    kit = _kit_module(repo)
    with pytest.raises(SystemExit):
        kit.use_params(repo / "params" / "bad.yaml")
    assert (repo / "params.yaml").read_text() == (root / "params.yaml").read_text()


def test_lab_allows_root_only_as_root(root, monkeypatch):
    kit = _kit_module(root)
    monkeypatch.setattr(kit.os, "geteuid", lambda: 0)
    assert kit.lab_command()[-1] == "--allow-root"
    monkeypatch.setattr(kit.os, "geteuid", lambda: 1000)
    assert "--allow-root" not in kit.lab_command()
