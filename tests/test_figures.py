"""Figure regression (pytest-mpl, `--mpl` is always on via pyproject addopts).

Each figure is drawn from a small fixed table and compared with the PNG in tests/baseline/.
Regenerate the baselines after an intended change with:
    pytest tests/test_figures.py --mpl-generate-path=tests/baseline
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nopeek_repro import figures, summary

TOL = 2  # RMS over 0-255 pixel values: room for font rasterisation, not for a changed curve


def _agg() -> pd.DataFrame:
    rows = []
    specs = [("baseline", "none", 0, 0, 0.95, 0.004, 0.99, 0.97)]
    specs += [(f"nopeek-a{a:g}", "nopeek", a, 0, acc, mse, d, du) for a, acc, mse, d, du in
              [(10, 0.95, 0.005, 0.98, 0.96), (30, 0.91, 0.014, 0.86, 0.72), (100, 0.35, 0.077, 0.41, 0.12)]]
    specs += [(f"noise-b{b:g}", "noise", 0, b, acc, mse, d, d) for b, acc, mse, d in
              [(1, 0.91, 0.009, 0.92), (4, 0.84, 0.026, 0.73), (8, 0.09, 0.11, 0.55)]]
    for run, defence, a, b, acc, mse, d, du in specs:
        for seed, eps in ((0, -0.005), (1, 0.005)):
            rows.append(dict(run=run, defence=defence, alpha_dcor=float(a), noise=float(b), seed=seed,
                             test_accuracy=acc + eps, leakage_dcor=d + eps, leakage_dcor_unbiased=du + eps,
                             recon_mse=mse * (1 + eps), recon_psnr=-10 * np.log10(mse), recon_ssim=1 - 5 * mse))
    return summary.aggregate(pd.DataFrame(rows).reindex(columns=summary.COLUMNS))


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_tradeoff_figure():
    return figures.tradeoff(_agg(), chance=0.1)


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_leakage_vs_alpha_figure():
    return figures.leakage_vs_alpha(_agg())


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_reconstruction_grid_figure():
    yy, xx = np.mgrid[0:28, 0:28] / 27.0
    originals = np.stack([np.sin(3 * (xx + k / 5)) ** 2 * yy for k in range(6)])
    return figures.reconstruction_grid(originals, {"baseline": originals * 0.9, "nopeek-a30": originals[::-1] * 0.5}, k=6)


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_training_curves_figure():
    rows = [dict(run=run, seed=s, epoch=e, test_accuracy=0.5 + 0.1 * e - k * 0.05 + s * 0.01,
                 test_dcor=0.99 - k * 0.1 * e / 5 + s * 0.005)
            for k, run in enumerate(["baseline", "nopeek-a10", "nopeek-a30"]) for s in (0, 1) for e in range(1, 6)]
    return figures.training_curves(pd.DataFrame(rows))


def _sweep() -> pd.DataFrame:
    rows = []
    for k, run in enumerate(["baseline", "nopeek-a30", "noise-b4"]):
        for seed in (0, 1):
            for f in (0.1, 0.25, 0.5):
                rows.append(dict(run=run, seed=seed, leak_fraction=f, recon_mse=0.01 * (k + 1) / (1 + 4 * f) + seed * 1e-3,
                                 attack_accuracy=0.9 - 0.3 * k + 0.1 * f - seed * 0.02))
    return pd.DataFrame(rows)


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_leak_sweep_figure():
    return figures.leak_sweep(_sweep(), chance=0.1, clean_accuracy=0.95)


@pytest.mark.mpl_image_compare(tolerance=TOL)
def test_colour_reconstruction_grid_figure():
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    originals = np.stack([np.stack([xx * (k + 1) / 4 % 1, yy, (xx + yy) / 2]) for k in range(4)])  # (4, 3, 32, 32)
    return figures.reconstruction_grid(originals, {"baseline": originals * 0.8, "nopeek-a30": originals[:, ::-1] * 0.6}, k=4)
