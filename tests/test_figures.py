"""Figure regression (pytest-mpl, `--mpl` is always on via pyproject addopts).

Each figure is drawn from a small fixed per-seed table (and its aggregate) and compared with the PNG
in tests/baseline/; a few tests check what is drawn (medians, one point per seed, floors) directly.
Regenerate the baselines after an intended change with:
    pytest tests/test_figures.py --mpl-generate-path=tests/baseline
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nopeek_repro import figures, summary

TOL = 2  # RMS over 0-255 pixel values: room for font rasterisation, not for a changed curve


SEEDS = ((0, -0.01), (1, 0.0), (2, 0.02))  # (seed, offset): three seeds, the median is the middle one


def _table() -> pd.DataFrame:
    """A per-seed table like summary.build's: baseline, a NoPeek and a noise sweep, three seeds each, floors."""
    rows = []
    specs = [("baseline", "none", 0, 0, 0.95, 0.004, 0.99, 0.97, 0.45)]
    specs += [
        (f"nopeek-a{a:g}", "nopeek", a, 0, acc, mse, d, du, sh)
        for a, acc, mse, d, du, sh in [
            (10, 0.95, 0.005, 0.98, 0.96, 0.44),
            (30, 0.91, 0.014, 0.86, 0.72, 0.40),
            (100, 0.35, 0.077, 0.41, 0.12, 0.33),
        ]
    ]
    specs += [
        (f"noise-b{b:g}", "noise", 0, b, acc, mse, d, d, 0.45)
        for b, acc, mse, d in [(1, 0.91, 0.009, 0.92), (4, 0.84, 0.026, 0.73), (8, 0.09, 0.11, 0.55)]
    ]
    for run, defence, a, b, acc, mse, d, du, sh in specs:
        for seed, eps in SEEDS:
            rows.append(
                dict(
                    run=run,
                    defence=defence,
                    alpha_dcor=float(a),
                    noise=float(b),
                    seed=seed,
                    test_accuracy=acc + eps,
                    leakage_dcor=d + eps,
                    leakage_dcor_unbiased=du + eps,
                    recon_mse=mse * (1 + 10 * eps),
                    recon_psnr=-10 * np.log10(mse),
                    recon_ssim=1 - 5 * mse,
                    leakage_dcor_shuffled=sh,
                    floor_label_dcor=0.31,
                )
            )
    table = pd.DataFrame(rows).reindex(columns=summary.COLUMNS)
    # a two-mode run, as large alphas give: one seed keeps its accuracy, one collapses to chance
    two_mode = table.run == "nopeek-a100"
    table.loc[two_mode, "test_accuracy"] = [0.35, 0.11, 0.86]
    table.loc[two_mode, "leakage_dcor"] = [0.41, 0.33, 0.78]
    return table


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_tradeoff_figure():
    table = _table()
    return figures.tradeoff(table, summary.aggregate(table), chance=0.1)


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_leakage_vs_alpha_figure():
    table = _table()
    return figures.leakage_vs_alpha(table, summary.aggregate(table))


def test_figures_draw_medians_and_every_seed():
    """The lines go through the medians over seeds (not the means) and every seed is a point."""
    table = _table()
    agg = summary.aggregate(table)
    nop = agg[agg.defence == "nopeek"].sort_values("alpha_dcor")
    ax = figures.tradeoff(table, agg, chance=0.1).axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("NoPeek"))
    np.testing.assert_allclose(line.get_ydata(), [0.95, 0.91, 0.35])  # a100: median 0.35, mean 0.44
    np.testing.assert_allclose(line.get_xdata(), nop.recon_mse)
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(points) == len(table)
    ax1, ax2 = figures.leakage_vs_alpha(table, agg).axes
    dcor = next(ln for ln in ax1.get_lines() if ln.get_label().startswith("DCOR"))
    np.testing.assert_allclose(dcor.get_ydata(), [0.98, 0.86, 0.41])
    np.testing.assert_allclose(
        next(ln for ln in ax2.get_lines() if "NoPeek" in ln.get_label()).get_ydata(), [0.95, 0.91, 0.35]
    )
    floors = {ln.get_label(): ln.get_ydata()[0] for ln in ax1.get_lines() if ln.get_label().startswith("DCOR floor")}
    assert floors == pytest.approx({"DCOR floor: label-only Z": 0.31, "DCOR floor: baseline Z, shuffled pairing": 0.45})
    nopeek_seeds = 3 * 3
    assert sum(len(c.get_offsets()) for c in ax1.collections) == 2 * nopeek_seeds  # both estimators
    # without floor columns the floors are left out, not drawn at NaN
    bare = table.drop(columns=["floor_label_dcor", "leakage_dcor_shuffled"])
    ax1 = figures.leakage_vs_alpha(bare, summary.aggregate(bare)).axes[0]
    assert not [ln for ln in ax1.get_lines() if ln.get_label().startswith("DCOR floor")]


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_reconstruction_grid_figure():
    yy, xx = np.mgrid[0:28, 0:28] / 27.0
    originals = np.stack([np.sin(3 * (xx + k / 5)) ** 2 * yy for k in range(6)])
    return figures.reconstruction_grid(
        originals, {"baseline": originals * 0.9, "nopeek-a30": originals[::-1] * 0.5}, k=6
    )


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_training_curves_figure():
    rows = [
        dict(
            run=run,
            seed=s,
            epoch=e,
            test_accuracy=0.5 + 0.1 * e - k * 0.05 + s * 0.01,
            test_dcor=0.99 - k * 0.1 * e / 5 + s * 0.005,
        )
        for k, run in enumerate(["baseline", "nopeek-a10", "nopeek-a30"])
        for s in (0, 1)
        for e in range(1, 6)
    ]
    return figures.training_curves(pd.DataFrame(rows))


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_collapse_diagnostics_figure():
    rows = [
        dict(
            run=run,
            seed=s,
            epoch=e,
            dead_channels=(0.5 * e / 5 if (run, s) == ("nopeek-a30", 1) else 0.0),
            z_std=0.3 - (0.05 * e if (run, s) == ("nopeek-a30", 1) else 0.0) + 0.01 * k,
            grad_ratio=0.0 if run == "baseline" else 10.0**k * (1 + e / 5) * (1 + s),
        )
        for k, run in enumerate(["baseline", "nopeek-a10", "nopeek-a30", "noise-b2"])
        for s in (0, 1)
        for e in range(1, 6)
    ]
    return figures.collapse_diagnostics(pd.DataFrame(rows), {("nopeek-a30", 1)})


def _sweep() -> pd.DataFrame:
    rows = []
    for k, run in enumerate(["baseline", "nopeek-a30", "noise-b4"]):
        for seed in (0, 1):
            for f in (0.1, 0.25, 0.5):
                rows.append(
                    dict(
                        run=run,
                        seed=seed,
                        leak_fraction=f,
                        recon_mse=0.01 * (k + 1) / (1 + 4 * f) + seed * 1e-3,
                        attack_accuracy=0.9 - 0.3 * k + 0.1 * f - seed * 0.02,
                    )
                )
    return pd.DataFrame(rows)


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_leak_sweep_figure():
    return figures.leak_sweep(_sweep(), chance=0.1, clean_accuracy=0.95)


def test_leak_sweep_draws_medians_and_seed_points():
    sweep = _sweep()
    extra = sweep[sweep.seed == 1].assign(seed=2, recon_mse=lambda d: d.recon_mse * 3)  # a third, far-off seed
    sweep = pd.concat([sweep, extra], ignore_index=True)
    fig = figures.leak_sweep(sweep, chance=0.1, clean_accuracy=0.95)
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "baseline")
    expected = sweep[sweep.run == "baseline"].groupby("leak_fraction").recon_mse.median()
    np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
    assert not np.allclose(line.get_ydata(), sweep[sweep.run == "baseline"].groupby("leak_fraction").recon_mse.mean())
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(sweep)
    assert fig.get_suptitle() == "Strongest attack against the leak fraction (median over 3 seeds)"


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_colour_reconstruction_grid_figure():
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    originals = np.stack([np.stack([xx * (k + 1) / 4 % 1, yy, (xx + yy) / 2]) for k in range(4)])  # (4, 3, 32, 32)
    return figures.reconstruction_grid(
        originals, {"baseline": originals * 0.8, "nopeek-a30": originals[:, ::-1] * 0.6}, k=4
    )
