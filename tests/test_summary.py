"""The tidy table, its per-run statistics (medians, ranges, ddof = 1), the stage records and the DVC metrics."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from nopeek_repro import summary
from nopeek_repro.defences import all_runs


def _metrics(tmp_path, runs, accuracies=None):
    tr, at = {}, {}
    for i, r in enumerate(runs):
        tr[r.name] = tmp_path / f"train-{r.name}.json"
        at[r.name] = tmp_path / f"attack-{r.name}.json"
        acc = accuracies[r.name] if accuracies else {s: 0.9 - i / 10 + s / 100 for s in (0, 1)}
        summary.write_record(
            tr[r.name],
            {s: {"test_accuracy": acc[s], "leakage_dcor": 0.5, "leakage_dcor_unbiased": 0.2} for s in (0, 1)},
        )
        summary.write_record(
            at[r.name],
            {
                s: {
                    "recon_mse": 0.01 * (i + 1),
                    "recon_psnr": 20.0,
                    "recon_ssim": 0.5,
                    "strongest_attack": ("ridge", "decoder")[s],
                    "n_leaked": 10,
                }
                for s in (0, 1)
            },
        )
    return tr, at


def test_build_and_aggregate(tmp_path):
    runs = all_runs([10.0], [2.0])
    table = summary.build(runs, *_metrics(tmp_path, runs))
    assert list(table.columns) == summary.COLUMNS
    assert table.attack_accuracy.isna().all()  # not in these metrics files: empty, not an error
    assert table.collapsed.isna().all()  # no chance given: not judged
    assert len(table) == 6 and table.seed.tolist() == [0, 1] * 3
    assert table.defence.tolist()[::2] == ["none", "nopeek", "noise"]
    assert table.strongest_attack.tolist() == ["ridge", "decoder"] * 3
    agg = summary.aggregate(table)
    assert agg.n_seeds.tolist() == [2, 2, 2]
    assert agg.test_accuracy.iloc[0] == pytest.approx(0.905)  # median of 0.90 and 0.91
    assert agg.test_accuracy_std.iloc[0] == pytest.approx(0.01 / math.sqrt(2))  # ddof = 1, not 0.005
    assert agg.strongest.tolist() == ["decoder 1, ridge 1"] * 3  # a tie: by name
    assert agg.n_collapsed.isna().all()


def test_key_metrics_are_flat_medians_per_model(tmp_path):
    runs = all_runs([10.0, 100.0], [2.0])
    acc = {r.name: {0: 0.9, 1: 0.95} for r in runs} | {"nopeek-a100": {0: 0.1, 1: 0.93}}  # a two-mode run
    agg = summary.aggregate(summary.build(runs, *_metrics(tmp_path, runs, acc)))
    record = summary.key_metrics(agg)
    assert list(record) == ["base", "a10", "a100", "b2"]  # short names, the runs' order
    assert record["a100"] == {"acc": 0.515, "mse": 0.03}  # medians (of two seeds: their midpoint), rounded
    assert record["b2"]["mse"] == 0.04
    assert all(isinstance(v, float) for r in record.values() for v in r.values())
    json.dumps(record, allow_nan=False)  # strict JSON: a number a run lacks is left out, never NaN


def test_build_marks_collapsed_seeds_against_chance(tmp_path):
    runs = all_runs([10.0], [2.0])
    acc = {"baseline": {0: 0.95, 1: 0.96}, "nopeek-a10": {0: 0.15, 1: 0.151}, "noise-b2": {0: 0.1, 1: 0.9}}
    table = summary.build(runs, *_metrics(tmp_path, runs, acc), chance=0.1)
    # collapsed = test accuracy <= chance + 0.05; 0.15 is on the edge and counts
    assert summary.COLLAPSE_MARGIN == 0.05
    assert table.collapsed.tolist() == [0, 0, 1, 0, 1, 0]
    agg = summary.aggregate(table)
    assert agg.n_collapsed.tolist() == [0, 1, 1]


def _hand_table() -> pd.DataFrame:
    """Three runs, in the order b, a, c (not alphabetical), with 3, 4 and 1 seeds."""
    rows = [
        dict(
            run="b",
            defence="nopeek",
            alpha_dcor=3.0,
            noise=0.0,
            seed=s,
            test_accuracy=v,
            recon_mse=m,
            collapsed=c,
            strongest_attack=k,
        )
        for s, v, m, c, k in zip(range(3), (0.1, 0.9, 0.2), (4.0, 1.0, 2.0), (1, 0, 1), ("ridge", "decoder", "ridge"))
    ]
    rows += [
        dict(
            run="a",
            defence="none",
            alpha_dcor=0.0,
            noise=0.0,
            seed=s,
            test_accuracy=v,
            recon_mse=1.0,
            collapsed=0,
            strongest_attack=k,
        )
        for s, v, k in zip(range(4), (1.0, 2.0, 3.0, 10.0), ("ridge", "ridge", "mean", float("nan")))
    ]
    rows += [
        dict(
            run="c",
            defence="noise",
            alpha_dcor=0.0,
            noise=8.0,
            seed=0,
            test_accuracy=0.5,
            recon_mse=3.0,
            collapsed=1,
            strongest_attack="mean",
        )
    ]
    return pd.DataFrame(rows)


def test_aggregate_medians_ranges_and_sample_std_by_hand():
    agg = summary.aggregate(_hand_table())
    assert agg.run.tolist() == ["b", "a", "c"]  # first-appearance order
    assert agg.defence.tolist() == ["nopeek", "none", "noise"]
    assert agg.n_seeds.tolist() == [3, 4, 1]
    b, a, c = (agg.iloc[i] for i in range(3))
    # b: 0.1, 0.9, 0.2 -> median 0.2 (the mean, 0.4, is no seed's outcome)
    assert b.test_accuracy == pytest.approx(0.2)
    assert (b.test_accuracy_min, b.test_accuracy_max) == pytest.approx((0.1, 0.9))
    assert b.test_accuracy_mean == pytest.approx(0.4)
    assert b.test_accuracy_std == pytest.approx(math.sqrt((0.3**2 + 0.5**2 + 0.2**2) / 2))
    assert b.recon_mse == pytest.approx(2.0) and b.recon_mse_std == pytest.approx(1.5275252316519468)
    # a: an even number of seeds -> the median is the midpoint of the middle two
    assert a.test_accuracy == pytest.approx(2.5)
    assert (a.test_accuracy_min, a.test_accuracy_max, a.test_accuracy_mean) == pytest.approx((1.0, 10.0, 4.0))
    assert a.test_accuracy_std == pytest.approx(math.sqrt(50 / 3))
    assert a.recon_mse_std == 0.0
    # c: one seed -> every statistic is the value, the sample std is undefined
    assert c.test_accuracy == c.test_accuracy_min == c.test_accuracy_max == c.test_accuracy_mean == 0.5
    assert math.isnan(c.test_accuracy_std)
    # what the table lacks is NaN, not an error
    assert agg.leakage_dcor.isna().all() and agg.attack_accuracy_std.isna().all()
    for m in summary.METRICS:
        for suffix in ("", "_min", "_max", "_mean", "_std"):
            assert m + suffix in agg.columns


def test_aggregate_counts_collapses_and_strongest_attacks():
    agg = summary.aggregate(_hand_table())
    assert agg.n_collapsed.tolist() == [2, 0, 1]
    # most frequent first, ties by name; a seed without a strongest attack is not counted
    assert agg.strongest.tolist() == ["ridge 2, decoder 1", "ridge 2, mean 1", "mean 1"]
    assert summary.strongest_counts(pd.Series(["ridge"] * 4 + ["decoder"])) == "ridge 4, decoder 1"
    no_flag = summary.aggregate(_hand_table().drop(columns=["collapsed", "strongest_attack"]))
    assert no_flag.n_collapsed.isna().all()  # not judged is not "none collapsed"
    assert no_flag.strongest.tolist() == ["", "", ""]


def test_aggregate_rejects_an_empty_table():
    with pytest.raises(ValueError, match="nothing to aggregate"):
        summary.aggregate(pd.DataFrame(columns=["run", "test_accuracy"]))


def test_markdown_table_shows_median_and_range():
    md = summary.markdown_table(summary.aggregate(_hand_table()))
    assert "| run | seeds | collapsed | test_accuracy | recon_mse | strongest attack |" in md
    assert "| b | 3 | 2 | 0.200 [0.100, 0.900] | 2.0000 [1.0000, 4.0000] | ridge 2, decoder 1 |" in md
    assert "| a | 4 | 0 | 2.500 [1.000, 10.000] | 1.0000 [1.0000, 1.0000] | ridge 2, mean 1 |" in md
    assert "| c | 1 | 1 | 0.500 | 3.0000 | mean 1 |" in md  # one seed: no range
    assert "Median [min, max] over seeds" in md and "within 0.05 of chance" in md
    no_flag = summary.markdown_table(summary.aggregate(_hand_table().drop(columns=["collapsed", "strongest_attack"])))
    assert "| c | 1 | – | 0.500 | 3.0000 | – |" in no_flag


def test_metrics_file_has_medians_and_per_seed(tmp_path):
    doc = summary.write_record(tmp_path / "m.json", {0: {"a": 1.0}, 1: {"a": 2.0}})
    assert (
        doc
        == json.loads((tmp_path / "m.json").read_text())
        == {"a": 1.5, "per_seed": {"0": {"a": 1.0}, "1": {"a": 2.0}}}
    )


def test_metrics_file_top_level_is_the_median_and_strings_stay_per_seed(tmp_path):
    per_seed = {
        0: {"a": 1.0, "n": 10, "strongest_attack": "ridge"},
        1: {"a": 5.0, "n": 12, "strongest_attack": "decoder"},
        2: {"a": 2.0, "n": 11, "strongest_attack": "ridge"},
    }
    doc = summary.write_record(tmp_path / "m.json", per_seed)
    assert doc == json.loads((tmp_path / "m.json").read_text())
    assert doc["a"] == 2.0  # the median; the mean would be 2.667
    assert doc["n"] == 11.0
    assert "strongest_attack" not in doc  # no median of names at the top level ...
    assert [doc["per_seed"][s]["strongest_attack"] for s in ("0", "1", "2")] == ["ridge", "decoder", "ridge"]
    # ... and the per-seed values, strings included, are what build() reads back
    assert summary.read_per_seed(tmp_path / "m.json") == {
        s: {k: (float(v) if k != "strongest_attack" else v) for k, v in m.items()} for s, m in per_seed.items()
    }


def test_missing_records_are_reported(tmp_path):
    runs = all_runs([10.0], [])
    tr, at = _metrics(tmp_path, runs)
    at["nopeek-a10"].unlink()
    with pytest.raises(FileNotFoundError, match="attack-nopeek-a10.json: stage record missing"):
        summary.build(runs, tr, at)
