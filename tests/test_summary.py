from __future__ import annotations

import json

import pytest

from nopeek_repro import summary
from nopeek_repro.defences import all_runs


def _metrics(tmp_path, runs):
    tr, at = {}, {}
    for i, r in enumerate(runs):
        tr[r.name] = tmp_path / f"train-{r.name}.json"
        at[r.name] = tmp_path / f"attack-{r.name}.json"
        summary.write_metrics(tr[r.name], {s: {"test_accuracy": 0.9 - i / 10 + s / 100, "leakage_dcor": 0.5,
                                               "leakage_dcor_unbiased": 0.2} for s in (0, 1)})
        summary.write_metrics(at[r.name], {s: {"recon_mse": 0.01 * (i + 1), "recon_psnr": 20.0, "recon_ssim": 0.5,
                                               "n_leaked": 10} for s in (0, 1)})
    return tr, at


def test_build_and_aggregate(tmp_path):
    runs = all_runs([10.0], [2.0])
    table = summary.build(runs, *_metrics(tmp_path, runs))
    assert list(table.columns) == summary.COLUMNS
    assert table.attack_accuracy.isna().all()  # not in these metrics files: empty, not an error
    assert len(table) == 6 and table.seed.tolist() == [0, 1] * 3
    assert table.defence.tolist()[::2] == ["none", "nopeek", "noise"]
    agg = summary.aggregate(table)
    assert agg.n_seeds.tolist() == [2, 2, 2]
    assert agg.test_accuracy.iloc[0] == pytest.approx(0.905)
    assert agg.test_accuracy_std.iloc[0] == pytest.approx(0.005)


def test_metrics_file_has_means_and_per_seed(tmp_path):
    doc = summary.write_metrics(tmp_path / "m.json", {0: {"a": 1.0}, 1: {"a": 2.0}})
    assert doc == json.loads((tmp_path / "m.json").read_text()) == {"a": 1.5, "per_seed": {"0": {"a": 1.0}, "1": {"a": 2.0}}}


def test_missing_metrics_are_reported(tmp_path):
    runs = all_runs([10.0], [])
    tr, at = _metrics(tmp_path, runs)
    at["nopeek-a10"].unlink()
    with pytest.raises(FileNotFoundError, match="attack-nopeek-a10.json: metrics file missing"):
        summary.build(runs, tr, at)
