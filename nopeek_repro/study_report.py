"""The design-space study's results: the table of every point, the chosen setting, the report section.

Reads the per-axis tables of :mod:`nopeek_repro.study` (every seed), aggregates them by **median**
over seeds (with the range [min, max]: some points are two-mode, and a mean describes no run),
chooses a setting on validation numbers only (:func:`choose`, rule in :mod:`nopeek_repro.study`)
and writes the replication report's study section (``results/study.md``) and two figures. Every
number in the section is computed here from the tables; the statements that compare numbers use
the rules written next to them (:data:`ATTACK_DROP`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .config import StudyParams
from .paths import Layout
from .report import _table
from .study import AXES, AXIS_NAMES, METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KEYS = ["axis", "setting", "alpha_dcor"]

ATTACK_DROP = 0.05
"""The squared variant "lowers what an attacker recovers" when, at its largest alpha_dcor that kept
accuracy, the median attack accuracy is more than this (5 points) below its baseline's. Fixed with
the study's code, before its results were seen."""


def load(layout: Layout, axes: tuple[str, ...] = AXIS_NAMES) -> pd.DataFrame:
    """Every axis's per-seed table that exists, in axis order."""
    found = [pd.read_csv(layout.study_axis(a)) for a in axes if layout.study_axis(a).is_file()]
    if not found:
        raise FileNotFoundError(
            f"{layout.study_axis('reference').parent}: no study results; run `python3 kit.py study`"
        )
    return pd.concat(found, ignore_index=True)


def load_histories(layout: Layout) -> pd.DataFrame:
    found = [pd.read_csv(layout.study_history(a)) for a in AXIS_NAMES if layout.study_history(a).is_file()]
    return pd.concat(found, ignore_index=True)


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """Medians over seeds per (axis, setting, alpha_dcor), with ``n_seeds``, ``n_collapsed``, ``chance`` and
    each setting's baseline medians ``base_val_accuracy``, ``base_test_accuracy``, ``base_attack_accuracy``."""
    g = table.groupby(KEYS, sort=False)
    agg = g[METRICS].median()
    agg["n_seeds"] = g.seed.nunique()
    agg["n_collapsed"] = g.collapsed.sum()
    agg["chance"] = g.chance.first()
    agg = agg.reset_index()
    base = agg[agg.alpha_dcor == 0].set_index(["axis", "setting"])
    idx = pd.MultiIndex.from_frame(agg[["axis", "setting"]])
    for col in ("val_accuracy", "test_accuracy", "attack_accuracy", "privacy"):
        agg[f"base_{col}"] = base[col].reindex(idx).to_numpy()
    return agg


def eligible(agg: pd.DataFrame, margin: float) -> pd.DataFrame:
    """The NoPeek points whose median validation accuracy is at most ``margin`` below their own baseline's."""
    return agg[(agg.alpha_dcor > 0) & (agg.val_accuracy >= agg.base_val_accuracy - margin - 1e-9)]


def choose(agg: pd.DataFrame, choose_from: list[str], margin: float) -> pd.Series | None:
    """The chosen point, on validation numbers only: among the :func:`eligible` points of the axes in
    ``choose_from``, the highest median ``val_privacy``, ties to the lower ``val_attack_accuracy``.
    None when no NoPeek point qualifies."""
    ok = eligible(agg[agg.axis.isin(choose_from)], margin)
    if ok.empty:
        return None
    return ok.sort_values(["val_privacy", "val_attack_accuracy"], ascending=[False, True], kind="stable").iloc[0]


def _spread(table: pd.DataFrame, col: str, digits: int = 3) -> pd.Series:
    """``median [min, max]`` over seeds per point, as text."""
    g = table.groupby(KEYS, sort=False)[col]
    return pd.Series(
        [f"{m:.{digits}f} [{a:.{digits}f}, {b:.{digits}f}]" for m, a, b in zip(g.median(), g.min(), g.max())],
        index=g.median().index,
    )


def points_table(table: pd.DataFrame) -> list[str]:
    """Every point as a Markdown table: median [min, max] over seeds; DCORs with their label-only floors."""
    g = table.groupby(KEYS, sort=False)
    cols = {
        "val acc": _spread(table, "val_accuracy"),
        "test acc": _spread(table, "test_accuracy"),
        "DCOR test set (floor)": g.leakage_dcor.median().map("{:.3f}".format)
        + g.floor_label_dcor.median().map(" ({:.3f})".format),
        "DCOR per batch (floor)": g.batch_dcor.median().map("{:.3f}".format)
        + g.floor_label_batch_dcor.median().map(" ({:.3f})".format),
        "dCor²_U": g.leakage_dcor_unbiased.median().map("{:.3f}".format),
        "attack MSE / no-info": _spread(table, "privacy", 2),
        "attack acc": _spread(table, "attack_accuracy"),
        "collapsed": g.collapsed.sum().astype(int).astype(str) + "/" + g.seed.nunique().astype(str),
    }
    frame = pd.DataFrame(cols)
    rows = [[axis, setting, f"{alpha:g}", *vals] for (axis, setting, alpha), *vals in frame.itertuples()]
    return _table(["axis", "setting", "alpha_dcor", *cols], rows)


def _where(row: pd.Series) -> str:
    what = "the reference" if row.axis == "reference" else f"{row.axis} = {row.setting}"
    return f"{what}, alpha_dcor {row.alpha_dcor:g}"


def _best_per_axis(agg: pd.DataFrame, margin: float) -> list[str]:
    """One line per axis: its best eligible point on validation (or why none), against the reference's."""
    out = []
    for axis in AXIS_NAMES:
        part = agg[agg.axis == axis]
        if part.empty:
            continue
        best = choose(part, [axis], margin)
        base = part[part.alpha_dcor == 0]
        label = "reference" if axis == "reference" else axis
        if best is None:
            largest = part[part.alpha_dcor > 0]
            out.append(
                f"- **{label}**: no NoPeek point stays within {margin * 100:g} points of its baseline on validation "
                f"(baseline val acc {', '.join(f'{v:.3f}' for v in base.val_accuracy)}; "
                f"smallest alpha_dcor {largest.alpha_dcor.min():g}: val acc "
                f"{largest.sort_values('alpha_dcor').val_accuracy.iloc[0]:.3f})."
            )
            continue
        out.append(
            f"- **{label}**: best within the margin: {_where(best)}: val privacy {best.val_privacy:.2f} "
            f"(its baseline {base[base.setting == best.setting].val_privacy.iloc[0]:.2f}), val acc "
            f"{best.val_accuracy:.3f} vs {best.base_val_accuracy:.3f}; on test: privacy {best.privacy:.2f}, "
            f"attack acc {best.attack_accuracy:.3f}, test acc {best.test_accuracy:.3f}."
        )
    return out


def _squared(agg: pd.DataFrame, histories: pd.DataFrame, margin: float) -> list[str]:
    """The peers' squared-distance statistic next to the paper's DCOR, with the :data:`ATTACK_DROP` rule."""
    sq = agg[agg.axis == "distance"]
    ref = agg[agg.axis == "reference"]
    if sq.empty or ref.empty:
        return ["The squared variant was not run (study.distance)."]
    last = histories.sort_values("epoch").groupby(["axis", "setting", "alpha_dcor", "seed"]).train_dcor.last()
    own = last.groupby(level=[0, 1, 2]).median()
    rows = []
    for _, r in pd.concat([ref, sq]).iterrows():
        rows.append(
            [
                "euclidean (paper)" if r.axis == "reference" else f"{r.setting}",
                f"{r.alpha_dcor:g}",
                f"{own.get((r.axis, r.setting, r.alpha_dcor), float('nan')):.3f}",
                f"{r.leakage_dcor:.3f}",
                f"{r.val_accuracy:.3f}",
                f"{r.test_accuracy:.3f}",
                f"{r.privacy:.2f}",
                f"{r.attack_accuracy:.3f}",
                f"{r.n_collapsed:.0f}/{r.n_seeds:.0f}",
            ]
        )
    lines = _table(
        [
            "trained with",
            "alpha_dcor",
            "own statistic (last epoch, per batch)",
            "DCOR test set",
            "val acc",
            "test acc",
            "attack MSE / no-info",
            "attack acc",
            "collapsed",
        ],
        rows,
    )
    kept = eligible(sq, margin)
    base = sq[sq.alpha_dcor == 0].iloc[0]
    if kept.empty:
        verdict = (
            f"No squared-variant NoPeek point kept its validation accuracy within {margin * 100:g} points, so "
            "none lowers leakage at usable accuracy."
        )
    else:
        top = kept.sort_values("alpha_dcor").iloc[-1]
        own_base = own.get(("distance", base.setting, 0.0), float("nan"))
        own_top = own.get(("distance", top.setting, top.alpha_dcor), float("nan"))
        drop = base.attack_accuracy - top.attack_accuracy
        lowers = drop > ATTACK_DROP
        verdict = (
            f"At the largest alpha_dcor that kept validation accuracy ({top.alpha_dcor:g}), training lowered the "
            f"squared statistic from {own_base:.3f} to {own_top:.3f} and the paper's DCOR from "
            f"{base.leakage_dcor:.3f} to {top.leakage_dcor:.3f}; the strongest attack's MSE ratio went from "
            f"{base.privacy:.2f} to {top.privacy:.2f} and its attack accuracy from {base.attack_accuracy:.3f} to "
            f"{top.attack_accuracy:.3f}. **Lowering the squared statistic "
            + ("lowers" if lowers else "does not lower")
            + f" what the attacker recovers** (rule: attack accuracy more than {ATTACK_DROP * 100:g} points below "
            "the baseline's)."
        )
    return [*lines, "", verdict]


def _collapse(table: pd.DataFrame, histories: pd.DataFrame) -> list[str]:
    """Every collapsed model of the study, next to the other seeds of the same point."""
    points = table[table.collapsed == 1][KEYS].drop_duplicates()
    n = int(table.collapsed.sum())
    if points.empty:
        return [f"No model of the study collapsed to chance ({len(table)} models)."]
    first = histories[histories.epoch == 1].set_index(["axis", "setting", "alpha_dcor", "seed"])
    rows = []
    for _, p in points.iterrows():
        part = table[(table.axis == p.axis) & (table.setting == p.setting) & (table.alpha_dcor == p.alpha_dcor)]
        for _, r in part.iterrows():
            e1 = first.loc[(r.axis, r.setting, r.alpha_dcor, r.seed)]
            rows.append(
                [
                    _where(r),
                    str(int(r.seed)),
                    "collapsed" if r.collapsed else "not collapsed",
                    f"{r.test_accuracy:.3f}",
                    f"{e1.z_std:.3g} → {r.z_std:.3g}",
                    f"{e1.dead_channels:.2f} → {r.dead_channels:.2f}",
                    f"{e1.grad_ratio:.3g} → {r.grad_ratio:.3g}",
                ]
            )
    head = ["point", "seed", "end", "test acc", "std(Z) epoch 1 → last", "dead channels", "grad ratio"]
    return [
        f"{n} of {len(table)} models collapsed to chance (test accuracy at most chance + 5 points), at "
        f"{len(points)} points. Each such point, every seed:",
        "",
        *_table(head, rows),
    ]


def _datasets(agg: pd.DataFrame, counterpart: tuple[str, str]) -> list[str]:
    """The ``dataset`` axis next to the MNIST sample at the same setting (``counterpart``: its axis and setting)."""
    other = agg[agg.axis == "dataset"]
    mnist = agg[(agg.axis == counterpart[0]) & (agg.setting == counterpart[1])]
    if other.empty or mnist.empty:
        return ["The second data set was not run (study.dataset)."]
    rows = []
    for name, part in [("mnist-sample", mnist), *((str(s), other[other.setting == s]) for s in other.setting.unique())]:
        for _, r in part.iterrows():
            rows.append(
                [
                    name,
                    f"{r.alpha_dcor:g}",
                    f"{r.test_accuracy:.3f}",
                    f"{r.leakage_dcor:.3f} ({r.floor_label_dcor:.3f})",
                    f"{r.privacy:.2f}",
                    f"{r.attack_accuracy:.3f}",
                    f"{r.n_collapsed:.0f}/{r.n_seeds:.0f}",
                ]
            )
    where = "the reference" if counterpart[0] == "reference" else f"{counterpart[0]} = {counterpart[1]}"
    return [
        f"The default run's setting ({where}) on each data set, medians over seeds (every seed in "
        "`results/study.csv`):",
        "",
        *_table(
            [
                "data set",
                "alpha_dcor",
                "test acc",
                "DCOR test set (floor)",
                "attack MSE / no-info",
                "attack acc",
                "collapsed",
            ],
            rows,
        ),
    ]


def _reference_text(params: StudyParams) -> str:
    ref = "the default run (params.yaml)" if params.reference is None else f"the default run with {params.reference}"
    return ref


def study_section(table: pd.DataFrame, agg: pd.DataFrame, histories: pd.DataFrame, params: StudyParams) -> str:
    """The report's study section as Markdown (module doc)."""
    margin = params.accuracy_margin
    choice = choose(agg, list(params.choose_from), margin)
    axes = [a for a in AXIS_NAMES if a in set(table.axis)]
    alphas = ", ".join(f"{a:g}" for a in sorted(table.alpha_dcor.unique()))
    seeds = ", ".join(str(int(s)) for s in sorted(table.seed.unique()))
    lines = [
        "## The design-space study",
        "",
        f"From the reference setting ({_reference_text(params)}), one axis changes at a time "
        f"({', '.join(a for a in axes if a != 'reference')}). At every setting: alpha_dcor {alphas} (0 = that "
        f"setting's baseline), seeds {seeds}: {len(table)} models, each attacked by the strongest of the kit's "
        "attacks on the main protocol. DCOR is the paper's V-statistic with Euclidean distances, over the whole "
        "test set and per training-size batch, each with its label-only floor; dCor²_U is the bias-corrected "
        "estimator. *attack MSE / no-info* is the strongest attack's test MSE over that of the mean leaked image "
        "(1 = the attacker learned nothing from Z). Medians over seeds, with [min, max]; every seed is in "
        "`results/study.csv`.",
        "",
        "### The chosen setting",
        "",
        f"Rule (validation part only): among the NoPeek points of {', '.join(params.choose_from)} whose median "
        f"validation accuracy is at most {margin * 100:g} points below their own baseline's, the highest median "
        "validation attack MSE / no-info (ties: the lower validation attack accuracy).",
        "",
    ]
    if choice is None:
        lines.append("**No NoPeek point qualifies**: at every setting, every alpha_dcor costs more accuracy.")
    else:
        part = table[
            (table.axis == choice.axis) & (table.setting == choice.setting) & (table.alpha_dcor == choice.alpha_dcor)
        ]
        lines += [
            f"**Chosen: {_where(choice)}.** On validation: accuracy {choice.val_accuracy:.3f} (its baseline "
            f"{choice.base_val_accuracy:.3f}), attack MSE / no-info {choice.val_privacy:.2f}, attack accuracy "
            f"{choice.val_attack_accuracy:.3f}. On test: accuracy {choice.test_accuracy:.3f} (baseline "
            f"{choice.base_test_accuracy:.3f}), DCOR {choice.leakage_dcor:.3f} (floor {choice.floor_label_dcor:.3f}), "
            f"attack MSE / no-info {choice.privacy:.2f} (baseline {choice.base_privacy:.2f}), attack accuracy "
            f"{choice.attack_accuracy:.3f} (baseline {choice.base_attack_accuracy:.3f}; chance {choice.chance:.2f}).",
            "",
            "Every seed of it (test): "
            + "; ".join(
                f"seed {int(r.seed)}: acc {r.test_accuracy:.3f}, MSE / no-info {r.privacy:.2f}, "
                f"attack acc {r.attack_accuracy:.3f}"
                for _, r in part.iterrows()
            )
            + ".",
        ]
    lines += [
        "",
        "### Each axis at its best",
        "",
        *_best_per_axis(agg, margin),
        "",
        "### The peers' squared-distance statistic",
        "",
        *_squared(agg, histories, margin),
        "",
        "### A second data set",
        "",
        *_datasets(
            agg,
            ("reference", "reference") if params.reference is None or choice is None else (choice.axis, choice.setting),
        ),
        "",
        "### Collapse",
        "",
        *_collapse(table, histories),
        "",
        "### Every point",
        "",
        *points_table(table),
        "",
    ]
    return "\n".join(lines)


def make_report(layout: Layout, params: StudyParams) -> tuple[pd.DataFrame, dict[str, "Figure"]]:
    """Combine every axis into ``study.csv``, write the report's study section ``study.md`` and the figures
    (``study_axes``, ``study_collapse``) into the layout's figures folder. Returns (aggregate, figures)."""
    from . import figures

    table = load(layout)
    histories = load_histories(layout)
    layout.study_table.write_text(table.to_csv(index=False, float_format="%.6g"))
    agg = aggregate(table)
    layout.study_report.write_text(study_section(table, agg, histories, params))
    figs = {
        "study_axes": figures.study_axes(table, [a for a in AXES if a in set(table.axis)]),
        "study_collapse": figures.study_collapse(histories, table),
    }
    layout.figures.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        fig.savefig(layout.figures / f"{name}.png", metadata={"Software": None})
    return agg, figs
