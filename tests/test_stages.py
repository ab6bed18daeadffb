"""The stage functions the notebooks call, run directly on a tiny split (fast tier)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nopeek_repro import config, data, paths, stages
from nopeek_repro.defences import all_runs


def test_prepare_refuses_altered_data(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / paths.DATA_FILE).write_bytes(b"not the sample")
    layout = paths.Layout(tmp_path / "results", tmp_path / "figures")
    with pytest.raises(data.DataError, match="differs from the embedded MNIST sample"):
        stages.prepare(layout, config.DataParams(), tmp_path / "data")
    assert not layout.prepared.exists()


def test_all_stages_on_a_tiny_split(tmp_path, root):
    layout = paths.Layout(tmp_path / "results", tmp_path / "figures")
    split = stages.prepare(layout, config.DataParams(n_train=140, n_test=64), root / "data")
    info = json.loads((layout.prepared.parent / "split.json").read_text())
    assert info["n_test"] == 64 == len(split.x_test) and info["n_val"] == 14 == len(split.x_val)
    assert info["n_train"] == 126 and not set(split.val_idx) & set(split.train_idx)  # carved from the training part
    tp = config.TrainParams(seeds=[0, 1], epochs=1, batch_size=32)
    ap = config.AttackParams(
        max_steps=6,
        eval_every=3,
        batch_size=32,
        n_examples=3,
        leak_sweep=[0.25],
        classifier_epochs=1,
        sweep_seeds=1,
        authors_split=0.9,
    )
    judge = stages.train_classifier(layout, tp, ap)
    assert 0 <= judge.clean_accuracy <= 1 and (layout.classifier / "classifier.pt").is_file()
    runs = all_runs([30.0], [2.0])
    for spec in runs:
        per_seed = stages.train_run(layout, spec, tp, config.ModelParams(), progress=False)
        assert per_seed.index.tolist() == [0, 1]
        scores = stages.attack_run(layout, spec.name, tp, ap, progress=False)
        assert scores.index.tolist() == [0, 1]
        assert {"attack_accuracy", "strongest_attack", "ridge_recon_mse", "mean_recon_mse"} <= set(scores.columns)
        assert scores.authors_recon_mse.notna().tolist() == [True, False]  # the authors' protocol: sweep_seeds = 1
        sweep = pd.read_csv(layout.leak_sweep(spec.name))
        assert sweep.leak_fraction.tolist() == [0.25, 0.5, 0.5] and sweep.seed.tolist() == [0, 0, 1]
    hist = pd.read_csv(layout.history("nopeek-a30"))
    assert hist.seed.tolist() == [0, 1] and hist.run.unique().tolist() == ["nopeek-a30"]
    agg, figs = stages.make_figures(layout, runs)
    assert agg.run.tolist() == [r.name for r in runs] and agg.n_seeds.tolist() == [2, 2, 2]
    assert sorted(p.name for p in layout.figures.glob("*.png")) == sorted(f"{k}.png" for k in figs)
    table = pd.read_csv(layout.summary)
    assert len(table) == 6 and "| run | seeds | collapsed |" in layout.summary_md.read_text()
    assert table.attack_accuracy.notna().all() and table.authors_recon_mse.notna().sum() == 3
    assert table[["val_accuracy", "val_leakage_dcor", "floor_label_dcor", "batch_dcor_shuffled"]].notna().all().all()
    assert "## The paper's claims" in layout.report.read_text()
    assert len(pd.read_csv(layout.leak_sweep_all)) == 9


def test_attack_without_classifier_names_the_stage(tmp_path, tiny_split):
    layout = paths.Layout(tmp_path / "results", tmp_path / "figures")
    data.save_split(tiny_split, layout.prepared)
    (layout.model_dir("baseline") / "seed0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no attack classifier here; run the prepare stage first"):
        stages.attack_run(layout, "baseline", config.TrainParams(), config.AttackParams(), progress=False)


def test_attack_without_models_names_the_stage(tmp_path, tiny_split):
    layout = paths.Layout(tmp_path / "results", tmp_path / "figures")
    data.save_split(tiny_split, layout.prepared)
    with pytest.raises(FileNotFoundError, match="no trained seeds; run the training stage of baseline first"):
        stages.attack_run(layout, "baseline", config.TrainParams(), config.AttackParams(), progress=False)


def test_find_root(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPEEK_ROOT")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "dvc.yaml").write_text("")
    (tmp_path / "params.yaml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert paths.find_root() == tmp_path
    monkeypatch.chdir("/")
    with pytest.raises(FileNotFoundError, match="no nopeek-repro checkout"):
        paths.find_root()


def test_find_root_prefers_the_stage_folder_to_dvc_root(tmp_path, monkeypatch):
    """A queued `dvc exp run` runs each stage in a copy while DVC_ROOT names the workspace: the copy wins."""
    monkeypatch.delenv("NOPEEK_ROOT")
    workspace, copy = tmp_path / "workspace", tmp_path / "workspace" / ".dvc" / "tmp" / "exps" / "tmpabc"
    for folder in (workspace, copy):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "dvc.yaml").write_text("")
        (folder / "params.yaml").write_text("")
    monkeypatch.setenv("DVC_ROOT", str(workspace))
    monkeypatch.chdir(copy)
    assert paths.find_root() == copy
    monkeypatch.chdir("/")
    assert paths.find_root() == workspace  # outside any checkout: DVC's root, the last resort
