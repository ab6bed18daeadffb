"""The real DVC pipeline, end to end at smoke size, in a throw-away copy of the repository."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml

from .conftest import run

SMOKE = {
    "data": {"n_train": 256, "n_test": 128},
    "train": {"seeds": [0], "epochs": 1},
    "nopeek": {"alpha_dcor": [30]},
    "noise": {"scale": [2]},
    "attack": {"max_steps": 10, "eval_every": 5, "leak_sweep": [0.25], "classifier_epochs": 1, "authors_split": 0.9},
}
RUNS = ["baseline", "nopeek-a30", "noise-b2"]


def _set_params(repo, patch):
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in patch.items():
        raw[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.mark.slow
def test_dvc_repro_end_to_end(repo_copy):
    repo = repo_copy
    _set_params(repo, SMOKE)
    run(["dvc", "status", "-q", "data.dvc"], repo)  # data/ is exactly what data.dvc records
    out = run(["dvc", "repro"], repo).stdout
    for stage in [
        "prepare",
        "train_baseline",
        "train_nopeek@30",
        "train_noise@2",
        "attack_baseline",
        "attack_nopeek@30",
        "attack_noise@2",
        "figures",
        "notebooks",
    ]:
        assert f"Running stage '{stage}'" in out

    # the default run's pipeline; study/dvc.yaml (opt-in) depends on the smoke params changed above
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], repo).stdout
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    files = {f: d["data"] for rev in metrics.values() for f, d in rev["data"].items()}
    assert list(files) == ["results/metrics.json"]  # one flat record per model, no configuration, no per-seed
    assert files["results/metrics.json"].keys() == {"base", "a30", "b2"}
    assert all(record.keys() == {"acc", "mse"} for record in files["results/metrics.json"].values())
    for name in RUNS:
        assert (repo / f"results/records/train-{name}.json").is_file()
        assert (repo / f"results/records/attack-{name}.json").is_file()

    summary = pd.read_csv(repo / "results" / "summary.csv")
    assert summary.run.tolist() == RUNS and summary.seed.tolist() == [0, 0, 0]
    assert {
        "defence",
        "alpha_dcor",
        "noise",
        "test_accuracy",
        "leakage_dcor",
        "leakage_dcor_unbiased",
        "recon_mse",
        "recon_psnr",
        "recon_ssim",
    } <= set(summary.columns)
    assert summary[["test_accuracy", "leakage_dcor", "recon_mse"]].notna().all().all()
    assert summary.attack_accuracy.notna().all() and summary.authors_recon_mse.notna().all()
    report = (repo / "results" / "report.md").read_text()
    assert "## The paper's claims" in report and "nan" not in report.lower()
    for fig in [
        "tradeoff",
        "reconstructions",
        "leakage_vs_alpha",
        "training_curves",
        "leak_sweep",
        "collapse_diagnostics",
    ]:
        assert (repo / "figures" / f"{fig}.png").stat().st_size > 10_000
    executed = sorted(p.name for p in (repo / "results" / "notebooks").glob("*.ipynb") if "study" not in p.name)
    assert len(executed) == 8 and "train_nopeek-30.ipynb" in executed
    # the readers' notebooks are this run's executed ones, byte for byte
    published = {"01_prepare_data": "prepare", "03_train_nopeek": "train_nopeek-30", "04_attack": "attack_nopeek-30"}
    for name, stage in published.items():
        assert (repo / "notebooks" / f"{name}.ipynb").read_bytes() == (
            repo / "results" / "notebooks" / f"{stage}.ipynb"
        ).read_bytes()

    # a second repro with nothing changed re-runs nothing
    again = run(["dvc", "repro"], repo).stdout
    assert "Running stage" not in again

    plots = run(["dvc", "plots", "show", "--json"], repo).stdout
    assert "results/tradeoff.csv" in plots and "results/history.csv" in plots

    # `dvc exp run -S` changes one setting and re-runs only the stages that depend on it
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"], repo)
    exp = run(["dvc", "exp", "run", "-S", "attack.n_examples=4"], repo).stdout
    assert "Running stage 'attack_nopeek@30'" in exp and "Running stage 'figures'" in exp
    assert "Running stage 'train_baseline'" not in exp and "Running stage 'prepare'" not in exp
    assert "attack.n_examples" in run(["dvc", "exp", "show", "--no-pager", "--csv"], repo).stdout
    # the README's comparison command fits 200 columns with every model's key numbers
    drop = re.search(r"dvc exp show --only-changed --drop '([^']+)'", (repo / "README.md").read_text())
    assert drop, "the README's `dvc exp show` command"
    table = run(
        ["dvc", "exp", "show", "--only-changed", "--drop", drop[1], "--no-pager"], repo, env={"COLUMNS": "200"}
    ).stdout
    assert "…" not in table and max(len(line.rstrip()) for line in table.splitlines()) <= 200, table
    csv = run(["dvc", "exp", "show", "--no-pager", "--csv"], repo).stdout.splitlines()[0].split(",")
    assert {f"{r}.{k}" for r in ("base", "a30", "b2") for k in ("acc", "mse")} <= set(csv)

    # a bad value stops the pipeline with one clear message and a non-zero exit
    _set_params(repo, {"attack": {"leak_fraction": 1.5}})
    bad = run(["dvc", "repro"], repo, check=False)
    assert bad.returncode != 0
    assert "params.yaml: attack.leak_fraction = 1.5: Input should be less than or equal to 1" in bad.stderr + bad.stdout


@pytest.mark.slow
def test_failed_stage_leaves_no_outputs(repo_copy):
    """A stage whose notebook fails exits non-zero with the notebook's error and removes its partial outputs."""
    import sys

    (repo_copy / "results" / "attacks" / "baseline").mkdir(parents=True)
    proc = run([sys.executable, "-m", "nopeek_repro.pipeline", "attack_baseline"], repo_copy, check=False)
    assert proc.returncode == 2  # a DataError inside the notebook: bad input, as for the runner's own checks
    assert "error: stage attack_baseline failed: DataError" in proc.stderr and "prepared split missing" in proc.stderr
    assert not (repo_copy / "results" / "attacks" / "baseline").exists()
    assert not (repo_copy / "results" / "metrics" / "attack-baseline.json").exists()
