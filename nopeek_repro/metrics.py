"""Metrics: task accuracy and reconstruction quality (images in [0, 1]).

- ``accuracy``: fraction of correct class predictions.
- ``recon_mse``: mean squared error per pixel, averaged over images.
- ``recon_psnr``: PSNR with **peak 1** (images in [0, 1]), ``10 log10(1 / MSE_i)`` per image,
  averaged over images (a peak of 255 on [0, 1] images would add 48 dB).
- ``recon_ssim``: SSIM (Wang et al. 2004: Gaussian weights with sigma 1.5, population
  covariances, data range 1) from scikit-image, computed per image and averaged over images.
"""

from __future__ import annotations

import torch
from skimage.metrics import structural_similarity
from torch import Tensor


def accuracy(pred: Tensor, target: Tensor) -> float:
    if pred.shape != target.shape:
        raise ValueError(f"accuracy: {pred.shape[0]} predictions for {target.shape[0]} labels")
    return float((pred == target).float().mean())


@torch.no_grad()
def reconstruction_metrics(recon: Tensor, target: Tensor) -> dict[str, float]:
    """MSE, PSNR (peak 1) and SSIM of reconstructions against the true images (n, c, h, w)."""
    if recon.shape != target.shape:
        raise ValueError(f"reconstruction_metrics: shapes differ, {tuple(recon.shape)} vs {tuple(target.shape)}")
    recon = recon.double().clamp(0.0, 1.0)
    target = target.double()
    mse_i = ((recon - target) ** 2).flatten(1).mean(1)
    psnr_i = 10.0 * torch.log10(1.0 / mse_i.clamp(min=1e-10))
    # one "channel" per image and channel: scikit-image averages the per-channel SSIMs
    r = recon.flatten(0, 1).numpy()
    t = target.flatten(0, 1).numpy()
    ssim = structural_similarity(t, r, data_range=1.0, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    return {"recon_mse": float(mse_i.mean()), "recon_psnr": float(psnr_i.mean()), "recon_ssim": float(ssim)}
