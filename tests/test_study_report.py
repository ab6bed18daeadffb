"""The study's aggregation, the validation-only choice, the report section and figures, on made-up tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nopeek_repro import config, paths, study, study_report


def _rows(axis, setting, alpha, val_acc, val_priv, test_priv=None, chance=0.1, attack=0.9, seeds=(0, 1, 2)):
    out = []
    for s in seeds:
        row = {m: 0.5 for m in study.METRICS}
        row.update(
            axis=axis,
            setting=setting,
            alpha_dcor=float(alpha),
            seed=s,
            n_classes=int(round(1 / chance)),
            chance=chance,
            collapsed=0,
            strongest_attack="decoder",
            val_accuracy=val_acc,
            test_accuracy=val_acc - 0.01,
            val_privacy=val_priv,
            privacy=val_priv if test_priv is None else test_priv,
            attack_accuracy=attack,
            val_attack_accuracy=attack,
        )
        out.append(row)
    return out


def _table(*groups) -> pd.DataFrame:
    return pd.DataFrame([r for g in groups for r in g]).reindex(columns=study.IDS + study.METRICS)


TABLE = _table(
    _rows("reference", "reference", 0, 0.95, 0.01),
    _rows("reference", "reference", 10, 0.94, 0.05),
    _rows("reference", "reference", 100, 0.80, 0.90),  # best privacy, but costs 15 points
    _rows("batch_size", "256", 0, 0.96, 0.01),
    _rows("batch_size", "256", 10, 0.945, 0.20, test_priv=0.9),  # within 2 points of its own baseline
    _rows("task", "lt5", 0, 0.99, 0.01, chance=0.5),
    _rows("task", "lt5", 10, 0.99, 0.60),  # better still, but the task is not a choosable axis
)


def test_aggregate_takes_medians_and_each_setting_keeps_its_own_baseline():
    table = TABLE.copy()
    table.loc[(table.axis == "reference") & (table.alpha_dcor == 10) & (table.seed == 2), "val_accuracy"] = 0.10
    agg = study_report.aggregate(table)
    ref10 = agg[(agg.axis == "reference") & (agg.alpha_dcor == 10)].iloc[0]
    assert ref10.val_accuracy == pytest.approx(0.94)  # the median, not the mean of a two-mode point
    b256 = agg[(agg.axis == "batch_size") & (agg.alpha_dcor == 10)].iloc[0]
    assert b256.base_val_accuracy == pytest.approx(0.96) and b256.n_seeds == 3 and b256.n_collapsed == 0


def test_choice_uses_validation_only_the_margin_and_the_allowed_axes():
    agg = study_report.aggregate(TABLE)
    chosen = study_report.choose(agg, ["reference", "batch_size"], 0.02)
    assert (chosen.axis, chosen.setting, chosen.alpha_dcor) == ("batch_size", "256", 10.0)
    assert study_report.choose(agg, ["reference", "batch_size", "task"], 0.02).axis == "task"
    assert study_report.choose(agg, ["reference"], 0.0) is None  # 0.94 < 0.95: nothing qualifies
    # test numbers never decide: make the test privacy of the reference point huge
    flipped = TABLE.copy()
    flipped.loc[(flipped.axis == "reference") & (flipped.alpha_dcor == 10), "privacy"] = 5.0
    again = study_report.choose(study_report.aggregate(flipped), ["reference", "batch_size"], 0.02)
    assert (again.axis, again.alpha_dcor) == ("batch_size", 10.0)


def _histories(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in table.iterrows():
        for epoch in (1, 2):
            rows.append(
                dict(
                    axis=r.axis,
                    setting=r.setting,
                    alpha_dcor=r.alpha_dcor,
                    seed=r.seed,
                    epoch=epoch,
                    train_dcor=0.9 - 0.001 * r.alpha_dcor,
                    z_std=0.1,
                    dead_channels=0.0,
                    grad_ratio=0.0 if r.alpha_dcor == 0 else 1.0,
                )
            )
    return pd.DataFrame(rows)


def test_section_states_the_choice_and_the_squared_verdict_from_the_numbers():
    table = pd.concat(
        [
            TABLE,
            _table(
                _rows("distance", "squared", 0, 0.95, 0.01, attack=0.96),
                _rows("distance", "squared", 10, 0.945, 0.03, attack=0.95),
                _rows("distance", "squared", 30, 0.90, 0.50, attack=0.20),  # costs accuracy: not the one judged
            ),
        ],
        ignore_index=True,
    )
    table.loc[(table.axis == "reference") & (table.alpha_dcor == 100) & (table.seed == 1), "collapsed"] = 1
    histories = _histories(table)
    params = config.StudyParams(choose_from=["reference", "batch_size"])
    text = study_report.study_section(table, study_report.aggregate(table), histories, params)
    assert "**Chosen: batch_size = 256, alpha_dcor 10.**" in text
    assert "attack MSE / no-info 0.90 (baseline 0.01)" in text  # on test: the chosen point's own numbers
    assert "**Lowering the squared statistic does not lower what the attacker recovers**" in text
    assert "1 of 30 models collapsed" in text
    assert "| task | lt5 | 10 |" in text  # every point is in the table
    lower = table.copy()
    lower.loc[(lower.axis == "distance") & (lower.alpha_dcor == 10), "attack_accuracy"] = 0.5
    text = study_report.study_section(lower, study_report.aggregate(lower), histories, params)
    assert "**Lowering the squared statistic lowers what the attacker recovers**" in text


def test_make_report_writes_the_table_section_and_figures(tmp_path):
    layout = paths.Layout(tmp_path / "results", tmp_path / "figures")
    layout.study_axis("reference").parent.mkdir(parents=True)
    histories = _histories(TABLE)
    for axis in ("reference", "batch_size", "task"):
        TABLE[TABLE.axis == axis].to_csv(layout.study_axis(axis), index=False)
        histories[histories.axis == axis].to_csv(layout.study_history(axis), index=False)
    agg, figs = study_report.make_report(layout, config.StudyParams())
    assert len(pd.read_csv(layout.study_table)) == len(TABLE)
    assert layout.study_report.read_text().startswith("## The design-space study")
    assert sorted(p.name for p in layout.figures.glob("*.png")) == ["study_axes.png", "study_collapse.png"]
    assert np.isfinite(agg.val_privacy).all()


def test_no_results_is_one_clear_error(tmp_path):
    layout = paths.Layout(tmp_path / "results", tmp_path / "figures")
    with pytest.raises(FileNotFoundError, match="no study results; run `python3 kit.py study`"):
        study_report.load(layout)
