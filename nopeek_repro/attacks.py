"""The decoder (model-inversion) attack on leaked activation/input pairs.

Threat model (worst case of the paper's testbed): the attacker sees what the server sees, the
activations ``Z`` the trained client sends (noise included for the noise defence), and has
obtained the raw inputs ``X`` of a random ``leak_fraction`` of the **training** set. It trains a
decoder ``Z -> X`` with MSE (Adam) on those pairs, then reconstructs the **held-out test** images
from their activations alone. Test images are never among the leaked pairs, so the score measures
inversion of unseen inputs, not memorisation. Pairs are matched by index, never by file order.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import AttackParams
from .data import Split
from .metrics import reconstruction_metrics
from .models import Decoder
from .split import Client
from .train import batches, progress_bar

log = logging.getLogger(__name__)


@dataclass
class AttackResult:
    metrics: dict[str, float]  # recon_mse, recon_psnr, recon_ssim, n_leaked, final_train_mse
    examples: np.ndarray  # (k, h, w) reconstructions of the test images example_indices picks, in [0, 1]
    leaked_idx: np.ndarray  # indices into the training split of the leaked pairs


def example_indices(labels: torch.Tensor, k: int) -> np.ndarray:
    """k test positions covering the classes in turn: the first 0, the first 1, ..., then the second 0, ..."""
    y = labels.numpy()
    per_class = [np.flatnonzero(y == c).tolist() for c in np.unique(y)]
    out: list[int] = []
    rank = 0
    while len(out) < min(k, len(y)):
        out += [idx[rank] for idx in per_class if rank < len(idx)][: k - len(out)]
        rank += 1
    return np.array(out, dtype=np.int64)


def leak_indices(n_train: int, leak_fraction: float, seed: int) -> np.ndarray:
    """A seeded random subset of ``ceil(leak_fraction * n_train)`` training indices."""
    if not 0 < leak_fraction <= 1:
        raise ValueError(f"leak_fraction must be in (0, 1], got {leak_fraction}")
    k = max(2, math.ceil(leak_fraction * n_train))
    return np.sort(np.random.default_rng(seed + 104729).permutation(n_train)[:k])


def decoder_attack(client: Client, split: Split, params: AttackParams, seed: int, progress: bool = True) -> AttackResult:
    """Train a decoder on leaked training pairs; score it on the held-out test images."""
    leaked = leak_indices(len(split.x_train), params.leak_fraction, seed)
    x_leak = split.x_train[leaked]
    z_leak = client.activations(x_leak)  # what the server saw for these inputs
    torch.manual_seed(seed)
    decoder = Decoder(tuple(z_leak.shape[1:]), split.image_shape)
    opt = torch.optim.Adam(decoder.parameters(), lr=params.lr)
    order = torch.Generator().manual_seed(seed)
    last = float("nan")
    for _ in progress_bar(range(params.epochs), f"decoder seed {seed}", progress):
        decoder.train()
        total, count = 0.0, 0
        for batch in batches(len(x_leak), params.batch_size, order):
            z, x = z_leak[batch], x_leak[batch]
            loss = F.mse_loss(decoder(z), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        last = total / count
    decoder.eval()
    with torch.no_grad():
        z_test = client.activations(split.x_test)
        recon = torch.cat([decoder(z_test[i : i + 512]) for i in range(0, len(z_test), 512)])
    metrics = reconstruction_metrics(recon, split.x_test)
    metrics.update(n_leaked=int(len(leaked)), final_train_mse=last)
    log.info("attack seed %d: %s", seed, metrics)
    shown = example_indices(split.y_test, params.n_examples)
    return AttackResult(metrics, recon[shown, 0].numpy(), leaked)
