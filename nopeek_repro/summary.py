"""The tidy results table (one row per trained model and seed) and its per-run statistics.

Identity columns: ``run, defence, alpha_dcor, noise, seed, leak_fraction``; ``collapsed`` is 1 when
the run's test accuracy is within :data:`COLLAPSE_MARGIN` of chance.

Training metrics (:func:`nopeek_repro.train.evaluate`): ``test_accuracy``, ``val_accuracy``;
``leakage_dcor`` (the paper's estimator: biased V-statistic DCOR, square-root form, Euclidean
distances, over the whole test set), ``leakage_dcor_unbiased`` (bias-corrected dCor^2, U-statistic,
same data), ``val_leakage_dcor`` (V-statistic on the validation part: what selections use),
``batch_dcor`` (V-statistic per test batch of the training batch size, mean over batches) and the
floors at the same sample sizes (:mod:`nopeek_repro.floors`): ``leakage_dcor_shuffled`` /
``batch_dcor_shuffled`` (the same Z paired with X in a shuffled order) and ``floor_label_dcor`` /
``floor_label_batch_dcor`` (a Z that is the one-hot label only); the collapse diagnostics at the
last epoch (:data:`nopeek_repro.train.DIAGNOSTICS`): ``dead_channels``, ``z_std``, ``grad_ratio``.

Attack metrics (:mod:`nopeek_repro.attacks`): the strongest attack's ``recon_mse, recon_psnr,
recon_ssim, attack_accuracy`` and its name ``strongest_attack``; per attack ``decoder_*``,
``ridge_*``, ``mean_*`` test MSE (and SSIM, attack accuracy) and held-out MSE; the decoder's
``decoder_steps, decoder_best_step, decoder_hit_cap, decoder_lr_drops, decoder_budget_25, decoder_budget_50``;
ridge's ``ridge_r, ridge_on_edge``; the authors' 90/10 protocol ``authors_*`` (strongest attack).
A metric a run did not measure is empty (NaN).

Per-run statistics (:func:`aggregate`): the **median** over seeds (column ``<m>``), ``<m>_min``,
``<m>_max``, ``<m>_mean`` and ``<m>_std`` (sample standard deviation, ddof = 1; NaN for one seed),
``n_seeds``, ``n_collapsed`` and ``strongest`` (how often each attack was the strongest). A mean of
a two-mode outcome describes no run, so tables lead with the median and the range.

Stage records (``results/records/``, :func:`write_record`) are JSON objects with the median over
seeds of every numeric metric at the top level and the per-seed values under ``per_seed``; they
are what the summary is built from. The DVC metrics file (:func:`key_metrics`, what ``dvc metrics
show`` and ``dvc exp show`` list) holds only the key numbers per model, flat, so that experiments
can be compared in a terminal.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .defences import RunSpec

COLLAPSE_MARGIN = 0.05
"""A run has *collapsed* when its test accuracy is at most chance + this (5 points; fixed on
2026-12-02 before the 5-seed default run was made)."""

IDS = ["run", "defence", "alpha_dcor", "noise", "seed", "leak_fraction", "collapsed"]
TRAIN_METRICS = [
    "test_accuracy",
    "val_accuracy",
    "leakage_dcor",
    "leakage_dcor_unbiased",
    "val_leakage_dcor",
    "leakage_dcor_shuffled",
    "batch_dcor",
    "batch_dcor_shuffled",
    "floor_label_dcor",
    "floor_label_batch_dcor",
    "dead_channels",
    "z_std",
    "grad_ratio",
]
ATTACK_METRICS = [
    "recon_mse",
    "recon_psnr",
    "recon_ssim",
    "attack_accuracy",
    "strongest_attack",
    "decoder_recon_mse",
    "ridge_recon_mse",
    "mean_recon_mse",
    "decoder_recon_ssim",
    "ridge_recon_ssim",
    "mean_recon_ssim",
    "decoder_attack_accuracy",
    "ridge_attack_accuracy",
    "mean_attack_accuracy",
    "decoder_holdout_mse",
    "ridge_holdout_mse",
    "mean_holdout_mse",
    "decoder_steps",
    "decoder_best_step",
    "decoder_hit_cap",
    "decoder_lr_drops",
    "decoder_budget_25",
    "decoder_budget_50",
    "ridge_r",
    "ridge_on_edge",
    "n_leaked",
    "n_holdout",
    "authors_recon_mse",
    "authors_recon_psnr",
    "authors_recon_ssim",
    "authors_attack_accuracy",
    "authors_strongest_attack",
]
COLUMNS = IDS + TRAIN_METRICS + ATTACK_METRICS
TEXT = {"strongest_attack", "authors_strongest_attack"}
METRICS = [m for m in TRAIN_METRICS + ATTACK_METRICS if m not in TEXT]
"""The numeric metrics :func:`aggregate` summarises."""


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _median(values: list[float]) -> float:
    v = sorted(values)
    k = len(v)
    return v[k // 2] if k % 2 else (v[k // 2 - 1] + v[k // 2]) / 2


def write_record(path: Path, per_seed: Mapping[int, Mapping[str, float | str]]) -> dict:
    """Write a stage record: medians over seeds of numeric metrics at the top level, per-seed values under ``per_seed``."""
    if not per_seed:
        raise ValueError(f"{path}: no seeds to write")
    keys = list(next(iter(per_seed.values())))
    top = {}
    for k in keys:
        vals = [float(m[k]) for m in per_seed.values() if _num(m.get(k)) and not math.isnan(float(m[k]))]
        if vals and all(_num(m.get(k)) for m in per_seed.values()):
            top[k] = round(_median(vals), 6)
    doc = {
        **top,
        "per_seed": {
            str(s): {k: (round(float(v), 6) if _num(v) else v) for k, v in m.items()} for s, m in per_seed.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def read_per_seed(path: Path) -> dict[int, dict[str, float | str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: stage record missing; run the stage that writes it first")
    return {int(s): m for s, m in json.loads(path.read_text())["per_seed"].items()}


def build(
    runs: list[RunSpec], train_records: dict[str, Path], attack_records: dict[str, Path], chance: float | None = None
) -> pd.DataFrame:
    """Join training and attack metrics of every run into the tidy table (see module doc)."""
    rows = []
    for spec in runs:
        tr = read_per_seed(train_records[spec.name])
        at = read_per_seed(attack_records[spec.name])
        for seed in sorted(tr):
            if seed not in at:
                raise ValueError(f"{attack_records[spec.name]}: no attack result for seed {seed}")
            rows.append(
                {
                    "run": spec.name,
                    "defence": spec.defence,
                    "alpha_dcor": spec.alpha_dcor,
                    "noise": spec.noise,
                    "seed": seed,
                    **tr[seed],
                    **at[seed],
                }
            )
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    if chance is not None:
        table["collapsed"] = (
            (table.test_accuracy <= chance + COLLAPSE_MARGIN + 1e-9).astype(float).where(table.test_accuracy.notna())
        )
    return table


KEY_METRICS = {"acc": ("test_accuracy", 3), "mse": ("recon_mse", 2)}
"""The DVC metrics of each model: key -> (summary column, significant digits kept). ``acc``: test
accuracy; ``mse``: the strongest attack's reconstruction MSE on held-out test images. Medians over
seeds, rounded for a terminal (two numbers per model keep ``dvc exp show --only-changed`` of the
default run's seven models within 200 columns); full precision, every other number and every seed
are in ``results/summary.csv``."""


def key_metrics(agg: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{short run name: {key: median}}`` for every run of :func:`aggregate`'s table (see
    :data:`KEY_METRICS`; a number the run did not measure is left out)."""
    out: dict[str, dict[str, float]] = {}
    for _, row in agg.iterrows():
        record = {}
        for key, (column, digits) in KEY_METRICS.items():
            value = row.get(column)
            if _num(value) and not math.isnan(float(value)):
                record[key] = float(f"{float(value):.{digits}g}")
        out[RunSpec.from_name(str(row["run"])).short] = record
    return out


def strongest_counts(values: pd.Series) -> str:
    """``"ridge 4, decoder 1"``: how often each attack was the strongest (most frequent first)."""
    counts = Counter(v for v in values if isinstance(v, str))
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def aggregate(summary: pd.DataFrame) -> pd.DataFrame:
    """Median, min, max, mean and std (ddof = 1) over seeds of every metric in :data:`METRICS`, one row per run.

    Runs keep their first-appearance order; a metric missing from ``summary`` comes out as NaN;
    ``n_collapsed`` counts the seeds marked ``collapsed`` (NaN when the table has no such column).
    """
    if "run" not in summary.columns or summary.empty:
        raise ValueError("summary table has no rows or no 'run' column: nothing to aggregate")
    missing = [c for c in ("defence", "alpha_dcor", "noise", "collapsed", *METRICS, *TEXT) if c not in summary.columns]
    df = pd.concat([summary, pd.DataFrame(float("nan"), index=summary.index, columns=missing)], axis=1)
    df[METRICS] = df[METRICS].apply(pd.to_numeric, errors="coerce")
    g = df.groupby("run", sort=False)
    out = g[["defence", "alpha_dcor", "noise"]].first()
    out["n_seeds"] = g.size()
    out["n_collapsed"] = g["collapsed"].sum(min_count=1)
    out["strongest"] = g["strongest_attack"].agg(strongest_counts)
    stats = g[METRICS]
    parts = [
        out,
        stats.median(),
        *(
            frame.add_suffix(suffix)
            for suffix, frame in (
                ("_min", stats.min()),
                ("_max", stats.max()),
                ("_mean", stats.mean()),
                ("_std", stats.std(ddof=1)),
            )
        ),
    ]
    return pd.concat(parts, axis=1).copy().reset_index()


SHOWN = [
    "test_accuracy",
    "leakage_dcor",
    "leakage_dcor_unbiased",
    "recon_mse",
    "recon_ssim",
    "attack_accuracy",
    "decoder_recon_mse",
    "ridge_recon_mse",
    "mean_recon_mse",
    "authors_recon_mse",
]
"""The metrics :func:`markdown_table` shows."""


def digits(metric: str) -> int:
    if metric.endswith(("_steps", "_step", "n_leaked", "n_holdout")):
        return 0
    return 2 if metric.endswith("psnr") else (4 if metric.endswith("mse") else 3)


def cell(row: pd.Series, m: str) -> str:
    """``median [min, max]`` of metric ``m`` in an :func:`aggregate` row (just the value for one seed)."""
    v = row.get(m)
    if v is None or pd.isna(v):
        return "–"
    d = digits(m)
    if int(row.n_seeds) == 1:
        return f"{v:.{d}f}"
    return f"{v:.{d}f} [{row[m + '_min']:.{d}f}, {row[m + '_max']:.{d}f}]"


def markdown_table(agg: pd.DataFrame) -> str:
    """The aggregate as a Markdown table: median [min, max] over seeds, collapses and the strongest attack."""
    shown = [m for m in SHOWN if m in agg and agg[m].notna().any()]
    head = ["run", "seeds", "collapsed", *shown, "strongest attack"]
    lines = [
        "Median [min, max] over seeds. `recon_*` and `attack_accuracy`: the strongest attack of each "
        "model and seed (lowest MSE on the attacker's held-out slice); `collapsed`: seeds within "
        f"{COLLAPSE_MARGIN:g} of chance accuracy.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for _, r in agg.iterrows():
        col = "–" if pd.isna(r.n_collapsed) else str(int(r.n_collapsed))
        cells = [str(r.run), str(int(r.n_seeds)), col, *(cell(r, m) for m in shown), r.strongest or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
