"""The tidy results table: one row per trained model and seed.

Columns: ``run, defence, alpha_dcor, noise, seed, leak_fraction``, then the metrics
``test_accuracy, leakage_dcor, leakage_dcor_unbiased, recon_mse, recon_psnr, recon_ssim,
attack_accuracy, authors_recon_mse, authors_recon_psnr, authors_recon_ssim,
authors_attack_accuracy``. ``leakage_dcor`` is the paper's estimator (biased V-statistic DCOR,
square-root form, over the whole test set); ``leakage_dcor_unbiased`` is the bias-corrected dCor^2
(U-statistic) on the same data. ``recon_*`` and ``attack_accuracy`` score the attack on leaked
training pairs (``leak_fraction``) over the held-out test set; ``authors_*`` the authors' 90/10
protocol on the test-set pairs (:mod:`nopeek_repro.attacks`). A metric a run did not measure is
empty (NaN).

Metrics files (what ``dvc metrics show`` lists) are JSON objects with the mean over seeds at the
top level and the per-seed values under ``per_seed``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .defences import RunSpec

COLUMNS = [
    "run", "defence", "alpha_dcor", "noise", "seed", "leak_fraction", "test_accuracy", "leakage_dcor",
    "leakage_dcor_unbiased", "recon_mse", "recon_psnr", "recon_ssim", "attack_accuracy",
    "authors_recon_mse", "authors_recon_psnr", "authors_recon_ssim", "authors_attack_accuracy",
]
METRICS = COLUMNS[6:]


def write_metrics(path: Path, per_seed: dict[int, dict[str, float]]) -> dict:
    """Write a metrics JSON: means over seeds at the top level, per-seed values under ``per_seed``."""
    if not per_seed:
        raise ValueError(f"{path}: no seeds to write")
    keys = list(next(iter(per_seed.values())))
    mean = {k: sum(float(m[k]) for m in per_seed.values()) / len(per_seed) for k in keys}
    doc = {**{k: round(v, 6) for k, v in mean.items()},
           "per_seed": {str(s): {k: round(float(v), 6) for k, v in m.items()} for s, m in per_seed.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def read_per_seed(path: Path) -> dict[int, dict[str, float]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file missing; run the stage that writes it first")
    return {int(s): m for s, m in json.loads(path.read_text())["per_seed"].items()}


def build(runs: list[RunSpec], train_metrics: dict[str, Path], attack_metrics: dict[str, Path]) -> pd.DataFrame:
    """Join training and attack metrics of every run into the tidy table (see module doc)."""
    rows = []
    for spec in runs:
        tr = read_per_seed(train_metrics[spec.name])
        at = read_per_seed(attack_metrics[spec.name])
        for seed in sorted(tr):
            if seed not in at:
                raise ValueError(f"{attack_metrics[spec.name]}: no attack result for seed {seed}")
            rows.append({"run": spec.name, "defence": spec.defence, "alpha_dcor": spec.alpha_dcor,
                         "noise": spec.noise, "seed": seed, **tr[seed], **at[seed]})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def aggregate(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds, one row per run (std is 0 for a single seed)."""
    g = summary.groupby(["run", "defence", "alpha_dcor", "noise"], sort=False)[[m for m in METRICS if m in summary]]
    out = g.mean().join(g.std(ddof=0).add_suffix("_std")).reset_index()
    out.insert(4, "n_seeds", g.size().values)
    return out


def markdown_table(agg: pd.DataFrame) -> str:
    """The aggregate as a Markdown table: mean +- std over seeds for every metric."""
    shown = [m for m in METRICS if m in agg and agg[m].notna().any()]
    head = ["run", "seeds", *shown]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in agg.iterrows():
        cells = [str(r.run), str(int(r.n_seeds))]
        for m in shown:
            digits = 2 if m.endswith("recon_psnr") else (4 if m.endswith("recon_mse") else 3)
            cells.append(f"{r[m]:.{digits}f} ± {r[m + '_std']:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
