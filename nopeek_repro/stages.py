"""What each pipeline stage does, as plain functions the notebooks call (and the tests reach).

Every stage reads and writes only through a :class:`Layout` (a results folder and a figures
folder), so the notebooks' smoke defaults write under ``results/smoke`` while the pipeline writes
under ``results``. Outputs are written last-step-last: metrics files, which mark a stage as
complete, are written only after everything else of the stage succeeded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .report import ReportContext

from . import attacks, data, models, runtime, summary, train
from .config import AttackParams, DataParams, ModelParams, TrainParams
from .defences import RunSpec
from .paths import Layout
from .runtime import make_layout

__all__ = ["Layout", "attack_run", "make_figures", "make_layout", "prepare", "train_run"]


def prepare(layout: Layout, params: DataParams, data_dir: Path) -> data.Split:
    """Check and load the raw data set, make the seeded split, save it; returns the split."""
    split = data.prepare_from_params(params, data_dir)
    split = data.with_validation(split, params.val_fraction, params.split_seed)
    assert split.val_idx is not None and split.y_val is not None  # with_validation sets both
    data.save_split(split, layout.prepared)
    (layout.prepared.parent / "split.json").write_text(
        json.dumps(
            {
                "dataset": params.dataset,
                "n_train": len(split.train_idx),
                "n_val": len(split.val_idx),
                "n_test": len(split.test_idx),
                "image_shape": list(split.image_shape),
                "n_classes": split.n_classes,
                "train_class_counts": np.bincount(split.y_train.numpy(), minlength=split.n_classes).tolist(),
                "val_class_counts": np.bincount(split.y_val.numpy(), minlength=split.n_classes).tolist(),
                "test_class_counts": np.bincount(split.y_test.numpy(), minlength=split.n_classes).tolist(),
            },
            indent=1,
        )
        + "\n"
    )
    return split


def train_classifier(layout: Layout, train_params: TrainParams, params: AttackParams) -> attacks.JudgeInfo:
    """Train and save the judge (attack-accuracy classifier) on clean training images; returns its record."""
    split = data.load_split(layout.prepared)
    runtime.set_determinism(params.classifier_seed, train_params.threads)
    net, info = attacks.train_classifier(split, train_params, params)
    attacks.save_classifier(net, info, layout.classifier)
    return info


def train_run(
    layout: Layout,
    spec: RunSpec,
    params: TrainParams,
    model: ModelParams,
    block_size: int = 1024,
    progress: bool = True,
    distance: str = "euclidean",
) -> pd.DataFrame:
    """Train ``spec`` once per seed (the client's DCOR with ``distance``: ``nopeek.distance``); save models,
    the per-epoch history and the stage record."""
    split = data.load_split(layout.prepared)
    per_seed, histories = {}, []
    for seed in params.seeds:
        trained = train.train(spec, split, params, model, seed, progress=progress, distance=distance)
        train.save(trained, layout.model_dir(spec.name) / f"seed{seed}")
        per_seed[seed] = train.evaluate(trained.client, trained.server, split, block_size, batch_size=params.batch_size)
        last = trained.history.iloc[-1]  # the collapse diagnostics at the end of training
        per_seed[seed].update({k: float(last[k]) for k in train.DIAGNOSTICS})
        histories.append(trained.history.assign(run=spec.name, seed=seed))
    hist = pd.concat(histories, ignore_index=True)
    layout.history(spec.name).parent.mkdir(parents=True, exist_ok=True)
    hist.to_csv(layout.history(spec.name), index=False, float_format="%.6g")
    summary.write_record(layout.train_record(spec.name), per_seed)
    return pd.DataFrame.from_dict(per_seed, orient="index").rename_axis("seed")


def attack_run(
    layout: Layout, run: str, train_params: TrainParams, params: AttackParams, progress: bool = True
) -> pd.DataFrame:
    """Every attack protocol on every seed's trained client of ``run``; saves metrics, the leak sweep, examples.

    Per seed: the main attack at ``leak_fraction`` (all attacks, the strongest reported); on the first
    ``sweep_seeds`` seeds also the ``leak_sweep`` fractions and the authors' 90/10 protocol (``authors_*``
    metrics; skipped when ``authors_split`` is None).
    """
    split = data.load_split(layout.prepared)
    runtime.set_determinism(0, train_params.threads)
    seeds = sorted(int(p.name[4:]) for p in layout.model_dir(run).glob("seed*"))
    if not seeds:
        raise FileNotFoundError(f"{layout.model_dir(run)}: no trained seeds; run the training stage of {run} first")
    classifier, _ = attacks.load_classifier(layout.classifier, split, train_params.device)
    extra = set(seeds[: params.sweep_seeds] if params.sweep_seeds is not None else seeds)
    jobs: list[tuple[int, float | None]] = [
        (s, f) for s in seeds for f in sorted({params.leak_fraction, *(params.leak_sweep if s in extra else [])})
    ]
    jobs += [(s, None) for s in seeds if s in extra and params.authors_split is not None]
    per_seed: dict[int, dict] = {}
    examples, sweep, trained = {}, [], {}
    with runtime.Progress(len(jobs), f"attacks on {run}", "attacks", progress) as line:
        for seed, fraction in jobs:
            line.note(seed=seed, leak="authors" if fraction is None else f"{fraction:g}")
            if seed not in trained:
                trained = {seed: train.load(layout.model_dir(run) / f"seed{seed}", split, train_params)}
            client = trained[seed].client
            if fraction is None:
                per_seed[seed].update(attacks.authors_attack(client, split, params, seed, classifier))
                line.update(1)
                continue
            result = attacks.decoder_attack(client, split, params, seed, leak_fraction=fraction, classifier=classifier)
            sweep.append({"run": run, "seed": seed, **result.metrics})
            if fraction == params.leak_fraction:
                per_seed[seed] = dict(result.metrics)
                examples[f"seed{seed}"] = result.examples
            line.update(1)
    out = layout.attack_dir(run)
    out.mkdir(parents=True, exist_ok=True)
    shown = attacks.example_indices(split.y_test, params.n_examples)
    # numpy's stub: a ** dict might fill allow_pickle; these keys ("seed<n>") never do
    np.savez_compressed(
        out / "examples.npz", test_pos=shown, test_idx=split.test_idx[shown], **cast("dict[str, Any]", examples)
    )
    pd.DataFrame(sweep).to_csv(layout.leak_sweep(run), index=False, float_format="%.6g")
    summary.write_record(layout.attack_record(run), per_seed)
    return pd.DataFrame.from_dict(per_seed, orient="index").rename_axis("seed")


def report_context(layout: Layout, table: pd.DataFrame, runs: list[RunSpec]) -> "ReportContext":
    """What was run, read back from the stages' own outputs (so the report describes what really ran)."""
    from .report import ReportContext

    split_info = json.loads((layout.prepared.parent / "split.json").read_text())
    first = layout.model_dir(runs[0].name) / f"seed{int(table.seed.min())}" / "run.json"
    run = json.loads(first.read_text())
    judge = None
    if (layout.classifier / "classifier.json").is_file():
        judge = json.loads((layout.classifier / "classifier.json").read_text())
    epochs = int(pd.read_csv(layout.history(runs[0].name)).epoch.max())
    fraction = float(table.leak_fraction.iloc[0]) if "leak_fraction" in table else float("nan")
    n_val = split_info.get("n_val")
    cut = run["model"]["cut_layer"]
    if cut is None:  # the architecture's own cut, named
        depth = run["model"].get("depth")
        cut = f"{models.default_cut(run['model']['arch'], **({} if depth is None else {'depth': depth}))} (default)"
    return ReportContext(
        dataset=split_info["dataset"],
        n_classes=int(split_info["n_classes"]),
        arch=run["model"]["arch"],
        cut_layer=cut,
        epochs=epochs,
        seeds=sorted(int(s) for s in table.seed.unique()),
        leak_fraction=fraction,
        clean_accuracy=judge["clean_accuracy"] if judge else None,
        judge=judge,
        batch_size=run.get("batch_size"),
        n_test=int(split_info["n_test"]),
        notes=[
            f"{split_info['n_train']} training, {n_val} validation and {split_info['n_test']} held-out test images."
        ],
    )


def make_figures(layout: Layout, runs: list[RunSpec]) -> tuple[pd.DataFrame, dict[str, Figure]]:
    """Build the summary tables, the figures and the replication report; save them. Returns (aggregate, figures)."""
    from . import figures, report  # seaborn/matplotlib are slow to import: only this stage needs them

    names = [r.name for r in runs]
    split_info = json.loads((layout.prepared.parent / "split.json").read_text())
    chance = 1.0 / int(split_info["n_classes"])
    table = summary.build(
        runs, {n: layout.train_record(n) for n in names}, {n: layout.attack_record(n) for n in names}, chance=chance
    )
    layout.summary.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(layout.summary, index=False, float_format="%.6g")
    agg = summary.aggregate(table)
    layout.summary_md.write_text(summary.markdown_table(agg))
    layout.metrics.write_text(json.dumps(summary.key_metrics(agg), indent=1) + "\n")
    layout.tradeoff_plot.parent.mkdir(parents=True, exist_ok=True)
    table[["run", "seed", "defence", "recon_mse", "test_accuracy", "leakage_dcor"]].to_csv(
        layout.tradeoff_plot, index=False, float_format="%.6g"
    )
    sweep = pd.concat([pd.read_csv(layout.leak_sweep(n)) for n in names], ignore_index=True)
    sweep.to_csv(layout.leak_sweep_all, index=False, float_format="%.6g")
    every_history = pd.concat([pd.read_csv(layout.history(n)) for n in names], ignore_index=True)
    every_history.to_csv(layout.history_all, index=False, float_format="%.6g")

    context = report_context(layout, table, runs)
    layout.report.write_text(report.replication_report(table, context))

    split = data.load_split(layout.prepared)
    first = np.load(layout.attack_dir(names[0]) / "examples.npz")
    recons = {
        n: np.load(layout.attack_dir(n) / "examples.npz")[f"seed{table[table.run == n].seed.min()}"] for n in names
    }
    histories = every_history[[RunSpec.from_name(n).defence != "noise" for n in every_history.run]]
    figs = {
        "tradeoff": figures.tradeoff(table, agg, chance=context.chance),
        "reconstructions": figures.reconstruction_grid(
            split.x_test[first["test_pos"]].numpy(), recons, k=len(first["test_pos"])
        ),
        "leakage_vs_alpha": figures.leakage_vs_alpha(table, agg, chance=context.chance),
        "training_curves": figures.training_curves(histories),
        "leak_sweep": figures.leak_sweep(sweep, chance=context.chance, clean_accuracy=context.clean_accuracy),
        "collapse_diagnostics": figures.collapse_diagnostics(
            every_history, {(r, int(s)) for r, s, c in zip(table.run, table.seed, table.collapsed) if c == 1}
        ),
    }
    layout.figures.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        fig.savefig(layout.figures / f"{name}.png", metadata={"Software": None})
    return agg, figs
