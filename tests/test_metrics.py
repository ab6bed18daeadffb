from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from nopeek_repro.metrics import accuracy, reconstruction_metrics, ssim


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
    per_image = [
        structural_similarity(
            target[i, 0].numpy(),
            recon[i, 0].numpy(),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(5)
    ]
    assert m["recon_ssim"] == pytest.approx(float(np.mean(per_image)))


def test_perfect_reconstruction():
    x = torch.rand(3, 1, 28, 28)
    m = reconstruction_metrics(x, x)
    assert m["recon_mse"] == 0 and m["recon_ssim"] == pytest.approx(1.0) and m["recon_psnr"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_metrics(x, x[:2])


@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (4, 3, 32, 32), (3, 2, 13, 17), (2, 1, 11, 11)])
def test_batched_ssim_matches_scikit_image_per_image(shape):
    """The batched float64 convolution against scikit-image's per-image loop (a reference of a different form)."""
    g = torch.Generator().manual_seed(sum(shape))
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    recon = (target + 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    recon[0] = target[0]  # one perfect reconstruction
    recon[1] = 0.5  # one constant image
    ours = ssim(recon, target)
    ref = [
        structural_similarity(
            target[i].numpy(),
            recon[i].numpy(),
            data_range=1.0,
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(shape[0])
    ]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-12)
    assert float(ours[0]) == pytest.approx(1.0)


def test_ssim_refuses_images_smaller_than_its_window():
    x = torch.rand(2, 1, 10, 28)
    with pytest.raises(ValueError, match="10x28 are smaller than the 11x11 Gaussian window"):
        ssim(x, x)
