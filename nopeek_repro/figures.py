"""Figures: data in, matplotlib Figure out (the figures notebook saves them as PNG).

a. :func:`tradeoff` - test accuracy against the strongest attack's reconstruction error (the
   paper's privacy-utility figure), for the NoPeek sweep, the uniform-noise sweep and the baseline.
b. :func:`reconstruction_grid` - the same held-out digits, original and reconstructed per run.
c. :func:`leakage_vs_alpha` - leakage DCOR(X, Z) (both estimators) beside its floors, and accuracy,
   against alpha_dcor.
d. :func:`training_curves` - test accuracy and test DCOR per epoch.
e. :func:`leak_sweep` - the strongest attack's reconstruction error and attack accuracy against the
   share of training pairs leaked to the attacker.
f. :func:`collapse_diagnostics` - per epoch, for the baseline and every NoPeek run and seed: the
   dead-channel fraction and std(Z) at the cut, and alpha * |grad DCOR| / |grad CE| on the client.
g. :func:`study_axes` - the design-space study, one column per axis: test accuracy, the strongest
   attack's MSE over the no-information attack's, and the attack accuracy, against alpha_dcor.
h. :func:`study_collapse` - std(Z) and the gradient ratio per epoch for every NoPeek model of the
   study, the collapsed ones in red.

Every seed is a point (small, translucent); lines join the medians over seeds. A mean of a
two-mode outcome (some seeds collapse, others do not) describes no run, so none is drawn.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

COLOURS = {"none": "#222222", "nopeek": "#1f77b4", "noise": "#d62728"}
LABELS = {"none": "baseline (no defence)", "nopeek": "NoPeek (alpha_dcor sweep)", "noise": "uniform noise (b sweep)"}


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "axes.titleweight": "bold"})


def _figure(nrows: int, ncols: int, figsize: tuple[float, float], **kw: Any) -> tuple[Figure, Any]:
    """A Figure outside pyplot's registry: no implicit display in notebooks, nothing to close."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def _seed_points(ax, x, y, color, marker: str = "o", size: float = 16) -> None:
    ax.scatter(x, y, s=size, alpha=0.45, color=color, marker=marker, edgecolors="none", zorder=2)


def _chance_line(ax, chance: float | None) -> None:
    """A dotted chance line labelled at the left edge of the axes (axes coordinates: safe on log axes)."""
    if chance is None:
        return
    ax.axhline(chance, ls=":", color="grey", lw=1)
    ax.annotate(
        "chance",
        (0.0, chance),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(4, 3),
        fontsize=8,
        color="grey",
    )


def tradeoff(table: pd.DataFrame, agg: pd.DataFrame, chance: float | None = None) -> Figure:
    """Accuracy vs the strongest attack's MSE: every seed a point, lines through the medians.

    ``table`` is the per-seed summary, ``agg`` :func:`nopeek_repro.summary.aggregate` of it.
    """
    _style()
    fig, ax = _figure(1, 1, (9.5, 4.8))
    for defence in ("none", "nopeek", "noise"):
        d = agg[agg.defence == defence].sort_values(["alpha_dcor", "noise"])
        if d.empty:
            continue
        t = table[table.defence == defence]
        _seed_points(
            ax,
            t.recon_mse,
            t.test_accuracy,
            COLOURS[defence],
            "*" if defence == "none" else "o",
            size=60 if defence == "none" else 16,
        )
        ax.plot(
            d.recon_mse,
            d.test_accuracy,
            "*" if defence == "none" else "o-",
            ms=14 if defence == "none" else 6,
            color=COLOURS[defence],
            label=LABELS[defence] + ", median",
            zorder=3,
        )
        for _, r in d.iterrows():
            if defence != "none":
                text = f"a={r.alpha_dcor:g}" if defence == "nopeek" else f"b={r.noise:g}"
                ax.annotate(
                    text,
                    (r.recon_mse, r.test_accuracy),
                    textcoords="offset points",
                    xytext=(5, 4),
                    fontsize=8,
                    color=COLOURS[defence],
                )
    _chance_line(ax, chance)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor labels collide on a short range
    ax.set_xlabel("strongest attack's MSE on held-out images, log scale (higher = more private)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Privacy-utility trade-off (points: seeds)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8.5)
    fig.tight_layout()
    return fig


def _as_image(img: np.ndarray) -> np.ndarray:
    """(h, w), (1, h, w) or (3, h, w) -> what imshow takes: (h, w) grey or (h, w, 3) colour."""
    if img.ndim == 3 and img.shape[0] == 1:
        return img[0]
    if img.ndim == 3 and img.shape[0] == 3:
        return np.clip(np.moveaxis(img, 0, -1), 0.0, 1.0)
    return img


def reconstruction_grid(
    originals: np.ndarray,
    recons: dict[str, np.ndarray],
    k: int = 8,
    title: str = "Reconstructions of held-out test images by the strongest attack (first seed of each model)",
) -> Figure:
    """Rows: the original test images, then each run's reconstructions of the same images.

    Images are (k, h, w) grey or (k, c, h, w) with c = 1 or 3, values in [0, 1].
    """
    _style()
    rows = [("original", originals[:k]), *((name, r[:k]) for name, r in recons.items())]
    k = min(k, len(originals))
    fig, axes = _figure(len(rows), k, (max(0.9 * k + 1.4, 7.0), 0.9 * len(rows) + 0.5), squeeze=False)
    for i, (name, imgs) in enumerate(rows):
        for j in range(k):
            ax = axes[i, j]
            ax.imshow(_as_image(np.asarray(imgs[j])), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontweight="bold", fontsize=10)
    fig.tight_layout()
    return fig


def leakage_vs_alpha(table: pd.DataFrame, agg: pd.DataFrame, chance: float | None = None) -> Figure:
    """Leakage (both estimators, whole test set) beside its floors, and test accuracy, against alpha_dcor.

    Every seed a point, lines through the medians; dashed: the baseline's median; dotted grey: the
    floors at the same n (label-only Z, and the baseline's Z in a shuffled pairing) when measured.
    """
    _style()
    nop = agg[agg.defence == "nopeek"].sort_values("alpha_dcor")
    tn = table[table.defence == "nopeek"]
    base = agg[agg.defence == "none"]
    fig, (ax1, ax2) = _figure(1, 2, (11, 4.6))
    for col, label, marker in (
        ("leakage_dcor", "DCOR (V-statistic, paper)", "o"),
        ("leakage_dcor_unbiased", "dCor$^2$ bias-corrected (U-statistic)", "s"),
    ):
        line = ax1.plot(nop.alpha_dcor, nop[col], f"{marker}-", label=label, zorder=3)[0]
        _seed_points(ax1, tn.alpha_dcor, tn[col], line.get_color(), marker)
        if not base.empty:
            ax1.axhline(float(base[col].iloc[0]), ls="--", color=line.get_color(), lw=1)
    for col, label, ls in (
        ("floor_label_dcor", "DCOR floor: label-only Z", ":"),
        ("leakage_dcor_shuffled", "DCOR floor: baseline Z, shuffled pairing", "-."),
    ):
        if col in base and base[col].notna().any():
            ax1.axhline(float(base[col].iloc[0]), ls=ls, color="grey", lw=1.2, label=label)
    ax1.set_xscale("log")
    ax1.set_xlabel("alpha_dcor")
    ax1.set_ylabel("leakage on the whole test set")
    ax1.set_title("Leakage DCOR(X, Z) (points: seeds)")
    ax1.set_ylim(min(-0.05, ax1.get_ylim()[0]), 1.05)
    ax1.legend(
        fontsize=7.5,
        title="dashed: baseline median",
        title_fontsize=7.5,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=2,
    )
    line = ax2.plot(nop.alpha_dcor, nop.test_accuracy, "o-", color=COLOURS["nopeek"], label="NoPeek (median)", zorder=3)
    _seed_points(ax2, tn.alpha_dcor, tn.test_accuracy, COLOURS["nopeek"])
    if not base.empty:
        ax2.axhline(float(base.test_accuracy.iloc[0]), ls="--", color=COLOURS["none"], lw=1, label="baseline median")
    _chance_line(ax2, chance)
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax2.set_xscale("log")
    ax2.set_xlabel("alpha_dcor")
    ax2.set_ylabel("test accuracy")
    ax2.set_title("Accuracy (points: seeds)")
    fig.tight_layout()
    return fig


def _run_palette(runs) -> tuple[list[str], dict[str, Any]]:
    """The runs in first-appearance order and a colour each (viridis; the baseline in its own grey)."""
    order = list(dict.fromkeys(runs))
    palette = dict(zip(order, sns.color_palette("viridis", len(order))))
    if "baseline" in palette:
        palette["baseline"] = COLOURS["none"]
    return order, palette


def _per_seed_lines(ax, data: pd.DataFrame, y: str, order: list[str], palette: dict, legend: bool, **kw: Any) -> None:
    """One thin line per run and seed against the epoch: seeds can end in different regimes, which a
    mean +- sd band would hide."""
    sns.lineplot(
        data=data,
        x="epoch",
        y=y,
        hue="run",
        hue_order=order,
        palette=palette,
        units="seed",
        estimator=None,
        marker="o",
        lw=1.2,
        ms=4,
        ax=ax,
        legend=legend,
        **kw,
    )


def training_curves(histories: pd.DataFrame) -> Figure:
    """Per-epoch test accuracy and test DCOR, one line per run and seed; ``histories`` has columns run, seed, epoch, ..."""
    _style()
    fig, (ax1, ax2) = _figure(1, 2, (10, 4))
    order, palette = _run_palette(histories.run)
    for ax, col, title in (
        (ax1, "test_accuracy", "Test accuracy"),
        (ax2, "test_dcor", "Test DCOR(X, Z) (V-statistic)"),
    ):
        _per_seed_lines(ax, histories, col, order, palette, legend=ax is ax2)
        ax.set_title(title)
    ax2.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def collapse_diagnostics(histories: pd.DataFrame, collapsed: set[tuple[str, int]] | None = None) -> Figure:
    """Dead-channel fraction, std(Z) and the gradient ratio per epoch, one line per run and seed;
    the seeds in ``collapsed`` (``(run, seed)``, e.g. those at chance accuracy) drawn dashed.

    ``histories`` has columns run, seed, epoch, dead_channels, z_std, grad_ratio; uniform-noise runs
    are left out (their Z carries the noise, and they have no DCOR term)."""
    _style()
    collapsed = collapsed or set()
    data = histories[[not r.startswith("noise") for r in histories.run]].copy()
    data["end"] = ["collapsed" if (r, int(s)) in collapsed else "kept accuracy" for r, s in zip(data.run, data.seed)]
    fig, axes = _figure(1, 3, (14, 4))
    order, palette = _run_palette(data.run)
    panels = (
        ("dead_channels", "Dead channels at the cut (fraction)"),
        ("z_std", "std(Z) over samples (mean over units)"),
        ("grad_ratio", "alpha·|∇DCOR| / |∇CE| on the client (log)"),
    )
    for ax, (col, title) in zip(axes, panels):
        _per_seed_lines(
            ax,
            data,
            col,
            order,
            palette,
            legend=ax is axes[-1],
            style="end",
            style_order=["kept accuracy", "collapsed"],
        )
        ax.set_title(title)
        ax.set_ylabel("")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    positive = data.grad_ratio[data.grad_ratio > 0]
    if len(positive):
        axes[2].set_yscale("log")
    axes[2].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def leak_sweep(sweep: pd.DataFrame, chance: float | None = None, clean_accuracy: float | None = None) -> Figure:
    """The strongest attack's MSE and attack accuracy against the leak fraction, one line per run through the
    medians over the seeds the sweep ran on (points: seeds; dashed: uniform noise).

    ``sweep`` has columns run, seed, leak_fraction, recon_mse and (optionally) attack_accuracy.
    """
    _style()
    panels = [("recon_mse", "reconstruction MSE (held-out images)")]
    if "attack_accuracy" in sweep and sweep.attack_accuracy.notna().any():
        panels.append(("attack_accuracy", "attack accuracy"))
    fig, axes = _figure(1, len(panels), (5.5 * len(panels) + 2.0, 4.2), squeeze=False)
    fractions = sorted(sweep.leak_fraction.unique())
    order, palette = _run_palette(sweep.run)
    for ax, (col, label) in zip(axes[0], panels):
        for run in order:
            r = sweep[sweep.run == run]
            d = r.groupby("leak_fraction")[col].median().reset_index()
            ax.plot(
                d.leak_fraction,
                d[col],
                "o--" if run.startswith("noise") else "o-",
                ms=4,
                lw=1.4,
                color=palette[run],
                label=run,
            )
            if r.seed.nunique() > 1:
                _seed_points(ax, r.leak_fraction, r[col], palette[run])
        ax.set_xscale("log")
        ax.set_xticks(fractions, [f"{f:.0%}" if f >= 0.01 else f"{f:.1%}" for f in fractions])
        ax.minorticks_off()
        ax.set_xlim(fractions[0] / 1.25, fractions[-1] * 1.25)
        ax.set_xlabel("training pairs leaked to the attacker (log scale)")
        ax.set_ylabel(label)
        if col == "recon_mse":
            ax.set_yscale("log")
            ax.set_title("Reconstruction error (higher = more private)", fontsize=10)
        else:
            ax.set_title("Classifier on the reconstructions (lower = more private)", fontsize=10)
            if chance is not None:
                ax.axhline(chance, ls=":", color="grey", lw=1, label="chance")
            if clean_accuracy is not None:
                ax.axhline(clean_accuracy, ls="--", color="grey", lw=1, label="classifier on clean images")
    axes[0, -1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    n = int(sweep.groupby("run").seed.nunique().max()) if len(sweep) else 0
    fig.suptitle(
        f"Strongest attack against the leak fraction (median over {n} seed{'s' if n != 1 else ''})",
        fontweight="bold",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


STUDY_PANELS = (
    ("test_accuracy", "test accuracy"),
    ("privacy", "attack MSE / no-info MSE"),
    ("attack_accuracy", "attack accuracy"),
)
"""The rows of :func:`study_axes`: (column of the study table, y label)."""


def study_axes(table: pd.DataFrame, axes: list[str]) -> Figure:
    """One column per study axis, one row per :data:`STUDY_PANELS` metric, against alpha_dcor (evenly spaced,
    0 = the setting's baseline): every seed a point, the median a line; the reference in grey in every column.

    ``table`` is the study's per-seed table (columns axis, setting, alpha_dcor, seed and the metrics)."""
    _style()
    alphas = sorted(table.alpha_dcor.unique())
    pos = {a: i for i, a in enumerate(alphas)}
    fig, grid = _figure(
        len(STUDY_PANELS), len(axes), (2.6 * len(axes) + 0.6, 7.8), squeeze=False, sharex=True, sharey="row"
    )
    ref = table[table.axis == "reference"]
    palette = sns.color_palette("tab10")
    for j, axis in enumerate(axes):
        part = table[table.axis == axis]
        groups = [("reference", ref, "#888888")] + [
            (str(setting), part[part.setting == setting], palette[k % 10])
            for k, setting in enumerate(part.setting.unique())
        ]
        for i, (col, label) in enumerate(STUDY_PANELS):
            ax = grid[i][j]
            for name, data, colour in groups:
                if data.empty:
                    continue
                x = data.alpha_dcor.map(pos)
                _seed_points(ax, x, data[col], colour, size=12)
                med = data.groupby("alpha_dcor")[col].median()
                ax.plot([pos[a] for a in med.index], med.to_numpy(), color=colour, lw=1.5, label=name, zorder=3)
            if col == "test_accuracy":
                for chance in sorted(set(part.chance) | set(ref.chance)):
                    ax.axhline(chance, ls=":", color="grey", lw=1)
            if i == 0:
                ax.set_title(axis)
                ax.legend(fontsize=7, loc="lower left")
            if j == 0:
                ax.set_ylabel(label)
            ax.set_xticks(range(len(alphas)))
            ax.set_xticklabels([f"{a:g}" for a in alphas], fontsize=8)
            if i == len(STUDY_PANELS) - 1:
                ax.set_xlabel("alpha_dcor")
    fig.tight_layout()
    return fig


def study_collapse(histories: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """Per epoch, for every NoPeek model of the study: std(Z) at the cut and alpha * |grad DCOR| / |grad CE| on
    the client (log); models that ended at chance (``table.collapsed``) in red, the others thin grey."""
    _style()
    keys = ["axis", "setting", "alpha_dcor", "seed"]
    ends = table.set_index(keys).collapsed
    data = histories[histories.alpha_dcor > 0]
    fig, axes = _figure(1, 2, (12, 4.2))
    for key, run in data.groupby(keys, sort=False):
        collapsed = bool(ends.get(key, 0))
        for ax, col in zip(axes, ("z_std", "grad_ratio")):
            ax.plot(
                run.epoch,
                run[col],
                color="#d62728" if collapsed else "#999999",
                lw=1.4 if collapsed else 0.6,
                alpha=0.9 if collapsed else 0.35,
                zorder=3 if collapsed else 2,
            )
    axes[0].set_title("std(Z) over samples (mean over units)")
    axes[1].set_title("alpha·|∇DCOR| / |∇CE| on the client (log)")
    if (data.grad_ratio > 0).any():
        axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    n = int(table[table.alpha_dcor > 0].collapsed.sum())
    axes[0].plot([], [], color="#d62728", label=f"collapsed to chance ({n})")
    axes[0].plot([], [], color="#999999", label="kept accuracy")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
