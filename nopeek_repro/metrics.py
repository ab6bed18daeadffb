"""Metrics: task accuracy and reconstruction quality (images in [0, 1]).

- ``accuracy``: fraction of correct class predictions.
- ``recon_mse``: mean squared error per pixel, averaged over images.
- ``recon_psnr``: PSNR with **peak 1** (images in [0, 1]), ``10 log10(1 / MSE_i)`` per image,
  averaged over images (a peak of 255 on [0, 1] images would add 48 dB).
- ``recon_ssim``: SSIM (Wang et al. 2004) as scikit-image's ``structural_similarity`` computes it
  with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``: local means
  ``mu`` and (population) variances/covariance ``v`` under a Gaussian window (sigma 1.5, truncated
  at 3.5 sigma: radius 5), ``S = (2 mu_x mu_y + C1)(2 v_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(v_x + v_y + C2))``
  with ``C1 = 0.01^2``, ``C2 = 0.03^2``, averaged over the pixels at least 5 from the border, per
  image and channel, then over images. Computed here as one batched float64 convolution
  (:func:`ssim`); tests/test_metrics.py checks it against scikit-image, which loops over images
  (it took ~7 s of every attack stage).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_SIGMA, SSIM_TRUNCATE, SSIM_K1, SSIM_K2 = 1.5, 3.5, 0.01, 0.03
SSIM_MIN_SIDE = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
"""The smallest image side SSIM's Gaussian window fits in (11 pixels): smaller images are refused
when the data are prepared, before any model trains."""


def accuracy(pred: Tensor, target: Tensor) -> float:
    if pred.shape != target.shape:
        raise ValueError(f"accuracy: {pred.shape[0]} predictions for {target.shape[0]} labels")
    return float((pred == target).float().mean())


def _gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> Tensor:
    """scipy.ndimage's 1-D Gaussian kernel: radius ``int(truncate * sigma + 0.5)``, normalised to sum 1."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


@torch.no_grad()
def ssim(recon: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image SSIM of ``(n, c, h, w)`` images (mean over channels), as scikit-image (module doc)."""
    w = _gaussian_window()
    k = len(w)
    n, c, h, wd = target.shape
    if h < k or wd < k:
        raise ValueError(f"ssim: images of {h}x{wd} are smaller than the {k}x{k} Gaussian window")
    x = target.double().reshape(n * c, 1, h, wd)
    y = recon.double().reshape(n * c, 1, h, wd)
    stack = torch.cat([x, y, x * x, y * y, x * y], 1)  # (n c, 5, h, w): one separable 'valid' filter for all five
    kern_h = w.reshape(1, 1, k, 1).expand(5, 1, k, 1)
    kern_w = w.reshape(1, 1, 1, k).expand(5, 1, 1, k)
    ux, uy, uxx, uyy, uxy = F.conv2d(F.conv2d(stack, kern_h, groups=5), kern_w, groups=5).unbind(1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).reshape(n, c).mean(1)


@torch.no_grad()
def reconstruction_metrics(recon: Tensor, target: Tensor) -> dict[str, float]:
    """MSE, PSNR (peak 1) and SSIM of reconstructions against the true images (n, c, h, w)."""
    if recon.shape != target.shape:
        raise ValueError(f"reconstruction_metrics: shapes differ, {tuple(recon.shape)} vs {tuple(target.shape)}")
    recon = recon.double().clamp(0.0, 1.0)
    target = target.double()
    mse_i = ((recon - target) ** 2).flatten(1).mean(1)
    psnr_i = 10.0 * torch.log10(1.0 / mse_i.clamp(min=1e-10))
    return {
        "recon_mse": float(mse_i.mean()),
        "recon_psnr": float(psnr_i.mean()),
        "recon_ssim": float(ssim(recon, target).mean()),
    }
