"""The design-space study: does NoPeek fail, or does the setting?

From a **reference** setting (the default run, merged with the overlay ``study.reference``) one
**axis** changes at a time (:data:`AXES`: the study field -> the setting it replaces). At every
setting the baseline (``alpha_dcor`` 0) and NoPeek at every ``study.alpha_dcor`` are trained with
every ``study.seeds``, measured like the default run's models (:func:`nopeek_repro.train.evaluate`)
and attacked by the strongest of the kit's attacks on the main protocol
(:func:`nopeek_repro.attacks.decoder_attack` at ``attack.leak_fraction``, no leak sweep).

Estimators: ``leakage_dcor`` is DCOR(X, Z) over the whole test set and ``batch_dcor`` its mean over
training-size batches, both the paper's V-statistic with Euclidean distances, each next to its
floors (``floor_label_*``: a Z that is the one-hot label; ``*_shuffled``: Z of other images);
``leakage_dcor_unbiased`` is the bias-corrected dCor^2_U. ``privacy`` is the strongest attack's
MSE divided by the no-information attack's (the mean leaked image): 1 means the attacker learned
nothing from Z, on the test part (``val_privacy``: the same on the validation part).

Selection (:func:`nopeek_repro.study_report.choose`) uses the validation part only: among the NoPeek points of the axes in
``study.choose_from`` whose median validation accuracy is at most ``study.accuracy_margin`` below
their own baseline's, the one with the highest median ``val_privacy`` (ties: the lower median
validation attack accuracy). Its test numbers are what the report states.

Special axes: ``client_optimizer`` also sets ``train.client_lr`` to ``study.sgd_lr`` for SGD;
``task: lt5`` trains on the label digit < 5 (two classes, the same images; the attack accuracy
still asks the 10-digit judge which digit a reconstruction shows); ``dataset`` runs on the default
run's setting (not the reference's), with its own split and judge.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import attacks, config, data, paths, runtime, train
from .config import Params
from .defences import RunSpec
from .paths import Layout
from .summary import COLLAPSE_MARGIN

log = logging.getLogger(__name__)

AXES: dict[str, tuple[str, str]] = {
    "cut_layer": ("model", "cut_layer"),
    "batch_size": ("train", "batch_size"),
    "alpha_ramp": ("train", "alpha_ramp"),
    "at_cut": ("model", "at_cut"),
    "client_optimizer": ("train", "client_optimizer"),
    "epochs": ("train", "epochs"),
    "task": ("", "task"),
    "distance": ("nopeek", "distance"),
    "dataset": ("data", "dataset"),
}
"""Each axis (a field of ``study``) -> the (section, key) of the setting its values replace."""
AXIS_NAMES: tuple[str, ...] = ("reference", *AXES)
"""The study's stages, one per axis; ``reference`` trains the reference itself."""

METRICS = [
    "val_accuracy",
    "test_accuracy",
    "leakage_dcor",
    "floor_label_dcor",
    "leakage_dcor_shuffled",
    "batch_dcor",
    "floor_label_batch_dcor",
    "batch_dcor_shuffled",
    "leakage_dcor_unbiased",
    "recon_mse",
    "mean_recon_mse",
    "privacy",
    "attack_accuracy",
    "val_recon_mse",
    "val_mean_recon_mse",
    "val_privacy",
    "val_attack_accuracy",
    "dead_channels",
    "z_std",
    "grad_ratio",
]
"""The per-seed numbers of every study point (module doc), in ``results/study/<axis>.csv``."""
IDS = ["axis", "setting", "alpha_dcor", "seed", "n_classes", "chance", "collapsed", "strongest_attack"]


@dataclass(frozen=True)
class Setting:
    """One setting of an axis: its label (the value as written) and every parameter it trains with."""

    axis: str
    label: str
    params: Params
    task: str = "all"  # "all": the data set's labels; "lt5": digit < 5


def _merged(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    return {k: {**v, **overlay.get(k, {})} if isinstance(v, dict) else v for k, v in base.items()}


def reference(params: Params) -> Params:
    """The default run ``params`` with the overlay file ``study.reference`` merged in."""
    where = paths.resolve(params.study.reference)
    overlay = config._read_yaml(where)
    return config.validate(Params, _merged(params.model_dump(), overlay), source=where.name)


def settings(params: Params, axis: str) -> list[Setting]:
    """The settings of one axis (for ``reference``: the reference alone)."""
    if axis not in AXIS_NAMES:
        raise config.ParamsError(f"study axis {axis!r}: unknown; allowed: {', '.join(AXIS_NAMES)}")
    ref = reference(params)
    if axis == "reference":
        return [Setting("reference", "reference", ref)]
    out = []
    for value in getattr(params.study, axis):
        if axis == "task":
            out.append(Setting(axis, str(value), ref, task=str(value)))
            continue
        section, key = AXES[axis]
        base = params if axis == "dataset" else ref
        change: dict[str, Any] = {key: value}
        if axis == "client_optimizer" and value == "sgd":
            change["client_lr"] = params.study.sgd_lr
        merged = _merged(base.model_dump(), {section: change})
        out.append(Setting(axis, str(value), config.validate(Params, merged, source=f"study.{axis}")))
    return out


def _relabel(split: data.Split, task: str) -> data.Split:
    if task == "all":
        return split
    binary = dataclasses.replace(split, classes=("digit >= 5", "digit < 5"))
    binary.y_train, binary.y_test = (split.y_train < 5).long(), (split.y_test < 5).long()
    binary.y_val = None if split.y_val is None else (split.y_val < 5).long()
    return binary


def _data(layout: Layout, setting: Setting, main: Params) -> tuple[data.Split, torch.nn.Module]:
    """The split and the judge of a setting: the pipeline's own (prepare stage), or, for another data set,
    prepared and trained here exactly as the prepare stage would."""
    p = setting.params
    if p.data == main.data:
        split = data.load_split(layout.prepared)
        judge, _ = attacks.load_classifier(layout.classifier, split, p.train.device)
        return split, judge
    split = data.prepare_from_params(p.data, paths.data_dir())
    split = data.with_validation(split, p.data.val_fraction, p.data.split_seed)
    runtime.set_determinism(p.attack.classifier_seed, p.train.threads)
    judge, info = attacks.train_classifier(split, p.train, p.attack)
    log.info("judge for %s: clean test accuracy %.3f", p.data.dataset, info.clean_accuracy)
    return split, judge


def run_point(
    setting: Setting, alpha: float, seed: int, split: data.Split, judge: torch.nn.Module, progress: bool = False
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train, measure and attack one model; returns its row and its per-epoch history."""
    p = setting.params
    spec = RunSpec() if alpha == 0 else RunSpec("nopeek", alpha_dcor=float(alpha))
    task_split = _relabel(split, setting.task)
    trained = train.train(spec, task_split, p.train, p.model, seed, progress=progress, distance=p.nopeek.distance)
    ev = train.evaluate(trained.client, trained.server, task_split, p.leakage.block_size, batch_size=p.train.batch_size)
    last = trained.history.iloc[-1]
    attack_params = p.attack.model_copy(update={"leak_sweep": [], "authors_split": None})
    runtime.set_determinism(0, p.train.threads)
    result = attacks.decoder_attack(trained.client, split, attack_params, seed, classifier=judge)
    m = result.metrics
    chance = 1.0 / task_split.n_classes
    row: dict[str, Any] = {
        "axis": setting.axis,
        "setting": setting.label,
        "alpha_dcor": float(alpha),
        "seed": seed,
        "n_classes": task_split.n_classes,
        "chance": chance,
        "collapsed": int(ev["test_accuracy"] <= chance + COLLAPSE_MARGIN + 1e-9),
        "strongest_attack": m["strongest_attack"],
        **{k: ev.get(k, np.nan) for k in METRICS if k in ev},
        **{k: float(last[k]) for k in train.DIAGNOSTICS},
        "recon_mse": m["recon_mse"],
        "mean_recon_mse": m["mean_recon_mse"],
        "attack_accuracy": m.get("attack_accuracy", np.nan),
        "val_recon_mse": m.get("val_recon_mse", np.nan),
        "val_mean_recon_mse": m.get("val_mean_recon_mse", np.nan),
        "val_attack_accuracy": m.get("val_attack_accuracy", np.nan),
    }
    row["privacy"] = row["recon_mse"] / row["mean_recon_mse"]
    row["val_privacy"] = row["val_recon_mse"] / row["val_mean_recon_mse"]
    history = trained.history.assign(axis=setting.axis, setting=setting.label, alpha_dcor=float(alpha), seed=seed)
    return row, history


def run_axis(layout: Layout, params: Params, axis: str, progress: bool = True) -> pd.DataFrame:
    """Every point of one axis (module doc); writes ``study/<axis>.csv`` and ``study/<axis>-history.csv``
    under the results folder, both only once every point is done. Returns the per-seed table."""
    todo = [
        (s, a, seed)
        for s in settings(params, axis)
        for a in (0, *params.study.alpha_dcor)
        for seed in params.study.seeds
    ]
    rows, histories, cache = [], [], {}
    with runtime.Progress(len(todo), f"study {axis}", "models", progress) as line:
        for setting, alpha, seed in todo:
            line.note(setting=setting.label, alpha=f"{alpha:g}", seed=seed)
            if setting.label not in cache:
                cache[setting.label] = _data(layout, setting, params)
            row, history = run_point(setting, alpha, seed, *cache[setting.label])
            rows.append(row)
            histories.append(history)
            line.update(1)
    table = pd.DataFrame(rows).reindex(columns=IDS + METRICS)
    out = layout.study_axis(axis)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(pd.concat(histories, ignore_index=True), layout.study_history(axis))
    _write_csv(table, out)
    return table


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)
