from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from nopeek_repro.metrics import accuracy, reconstruction_metrics


def test_accuracy():
    assert accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])) == 0.75
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy(torch.tensor([1, 2, 3]), torch.tensor([1, 2]))


def test_psnr_uses_peak_one_and_ssim_is_per_image_mean():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(5, 1, 28, 28, generator=g, dtype=torch.float64)
    recon = (target + 0.1 * torch.randn(5, 1, 28, 28, generator=g, dtype=torch.float64)).clamp(0, 1)
    m = reconstruction_metrics(recon, target)
    mse_i = ((recon - target) ** 2).flatten(1).mean(1)
    assert m["recon_mse"] == pytest.approx(float(mse_i.mean()))
    assert m["recon_psnr"] == pytest.approx(float(np.mean([10 * math.log10(1 / v) for v in mse_i.tolist()])))
    per_image = [structural_similarity(target[i, 0].numpy(), recon[i, 0].numpy(), data_range=1.0,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False) for i in range(5)]
    assert m["recon_ssim"] == pytest.approx(float(np.mean(per_image)))


def test_perfect_reconstruction():
    x = torch.rand(3, 1, 28, 28)
    m = reconstruction_metrics(x, x)
    assert m["recon_mse"] == 0 and m["recon_ssim"] == pytest.approx(1.0) and m["recon_psnr"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_metrics(x, x[:2])
