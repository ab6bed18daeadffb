"""What each pipeline stage does, as plain functions the notebooks call (and the tests reach).

Every stage reads and writes only through a :class:`Layout` (a results folder and a figures
folder), so the notebooks' smoke defaults write under ``results/smoke`` while the pipeline writes
under ``results``. Outputs are written last-step-last: metrics files, which mark a stage as
complete, are written only after everything else of the stage succeeded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import attacks, data, paths, summary, train
from .config import AttackParams, DataParams, TrainParams
from .defences import RunSpec
from .paths import Layout

log = logging.getLogger(__name__)


def make_layout(results: str | Path, figures_dir: str | Path | None = None) -> Layout:
    """A :class:`Layout` from paths relative to the repository root (figures default: results/figures)."""
    res = paths.resolve(results)
    return Layout(res, paths.resolve(figures_dir) if figures_dir is not None else res / "figures")


__all__ = ["Layout", "attack_run", "make_figures", "make_layout", "prepare", "train_run"]


def prepare(layout: Layout, params: DataParams, raw: Path) -> data.Split:
    """Check and load the raw data, make the seeded split, save it; returns the split."""
    data.check_sample(raw)
    split = data.prepare(raw, params.test_fraction, params.split_seed, params.n_train, params.n_test)
    data.save_split(split, layout.prepared)
    (layout.prepared.parent / "split.json").write_text(json.dumps({
        "dataset": params.dataset, "n_train": len(split.train_idx), "n_test": len(split.test_idx),
        "train_class_counts": np.bincount(split.y_train.numpy(), minlength=10).tolist(),
        "test_class_counts": np.bincount(split.y_test.numpy(), minlength=10).tolist(),
    }, indent=1) + "\n")
    return split


def train_run(layout: Layout, spec: RunSpec, params: TrainParams, cut_layer: int, block_size: int = 1024,
              progress: bool = True) -> pd.DataFrame:
    """Train ``spec`` once per seed; save models, the per-epoch history and the metrics file."""
    split = data.load_split(layout.prepared)
    per_seed, histories = {}, []
    for seed in params.seeds:
        trained = train.train(spec, split, params, cut_layer, seed, progress=progress)
        train.save(trained, layout.model_dir(spec.name) / f"seed{seed}")
        per_seed[seed] = train.evaluate(trained.client, trained.server, split, block_size)
        histories.append(trained.history.assign(run=spec.name, seed=seed))
    hist = pd.concat(histories, ignore_index=True)
    layout.history(spec.name).parent.mkdir(parents=True, exist_ok=True)
    hist.to_csv(layout.history(spec.name), index=False, float_format="%.6g")
    summary.write_metrics(layout.train_metrics(spec.name), per_seed)
    return pd.DataFrame.from_dict(per_seed, orient="index").rename_axis("seed")


def attack_run(layout: Layout, run: str, train_params: TrainParams, params: AttackParams,
               progress: bool = True) -> pd.DataFrame:
    """Decoder attack on every seed's trained client of ``run``; saves metrics and examples."""
    split = data.load_split(layout.prepared)
    train.set_determinism(0, train_params.threads)
    seeds = sorted(int(p.name[4:]) for p in layout.model_dir(run).glob("seed*"))
    if not seeds:
        raise FileNotFoundError(f"{layout.model_dir(run)}: no trained seeds; run the training stage of {run} first")
    per_seed, examples = {}, {}
    for seed in seeds:
        trained = train.load(layout.model_dir(run) / f"seed{seed}", split, train_params)
        result = attacks.decoder_attack(trained.client, split, params, seed, progress=progress)
        per_seed[seed] = result.metrics
        examples[f"seed{seed}"] = result.examples
    out = layout.attack_dir(run)
    out.mkdir(parents=True, exist_ok=True)
    shown = attacks.example_indices(split.y_test, params.n_examples)
    np.savez_compressed(out / "examples.npz", test_pos=shown, test_idx=split.test_idx[shown], **examples)
    summary.write_metrics(layout.attack_metrics(run), per_seed)
    return pd.DataFrame.from_dict(per_seed, orient="index").rename_axis("seed")


def make_figures(layout: Layout, runs: list[RunSpec]) -> tuple[pd.DataFrame, dict[str, Figure]]:
    """Build the summary table and the four figures; save CSVs and PNGs. Returns (aggregate, figures)."""
    from . import figures  # seaborn/matplotlib are slow to import: only this stage needs them

    names = [r.name for r in runs]
    table = summary.build(runs, {n: layout.train_metrics(n) for n in names}, {n: layout.attack_metrics(n) for n in names})
    layout.summary.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(layout.summary, index=False, float_format="%.6g")
    agg = summary.aggregate(table)
    layout.summary_md.write_text(summary.markdown_table(agg))
    layout.tradeoff_plot.parent.mkdir(parents=True, exist_ok=True)
    agg[["run", "defence", "recon_mse", "test_accuracy", "leakage_dcor"]].to_csv(
        layout.tradeoff_plot, index=False, float_format="%.6g")

    split = data.load_split(layout.prepared)
    first = np.load(layout.attack_dir(names[0]) / "examples.npz")
    recons = {n: np.load(layout.attack_dir(n) / "examples.npz")[f"seed{table[table.run == n].seed.min()}"] for n in names}
    histories = pd.concat([pd.read_csv(layout.history(n)) for n in names if RunSpec.from_name(n).defence != "noise"])
    figs = {
        "tradeoff": figures.tradeoff(agg, chance=1.0 / split.n_classes),
        "reconstructions": figures.reconstruction_grid(split.x_test[first["test_pos"], 0].numpy(), recons, k=len(first["test_pos"])),
        "leakage_vs_alpha": figures.leakage_vs_alpha(agg),
        "training_curves": figures.training_curves(histories),
    }
    layout.figures.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        fig.savefig(layout.figures / f"{name}.png", metadata={"Software": None})
    return agg, figs
