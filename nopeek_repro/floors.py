"""Reference values ("floors") that a leakage DCOR must be read against, at the same sample size.

The paper's V-statistic DCOR is not 0 for a Z that carries little about X: when X is
high-dimensional its double-centred distance matrix is close to a multiple of the centring
matrix, so DCOR mostly measures how unevenly Z's own distances spread, and it depends on n. Two
floors, each computed on the real data at the n of the number it sits beside:

- **label only**: ``DCOR(X, onehot(y))``, a Z that carries the class and nothing else of X. A
  representation that still classifies cannot go much below it; roughly
  ``((K - 1) / (n - 1)) ** (1/4)`` for K balanced classes.
- **shuffled**: ``DCOR(X, Z[perm])``, the same activations paired with the wrong inputs: what the
  estimator gives for this Z's distance spread when the pairing carries no information.

Per batch (``batch_*``): the mean over the test set cut into seeded batches of the training
batch size (what the NoPeek term sees during training); whole set: over all test images (what
``leakage_dcor`` is). All values are the V-statistic, Euclidean distances, float64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .dcor import distance_correlation, leakage

SHUFFLE_SEED = 2718
"""Seed of the pairing permutation and of the batch order (fixed: the floors are part of the results)."""


def _perm(n: int, salt: int) -> Tensor:
    return torch.from_numpy(np.random.default_rng([SHUFFLE_SEED, salt]).permutation(n))


def onehot(y: Tensor, n_classes: int) -> Tensor:
    return F.one_hot(y.long(), n_classes).double()


@torch.no_grad()
def per_batch(x: Tensor, z: Tensor, batch_size: int) -> float:
    """Mean V-statistic DCOR over seeded batches of ``batch_size`` rows (float64; a last batch under 4 rows is dropped)."""
    n = len(x)
    order = _perm(n, 1)
    vals = [
        float(distance_correlation(x[b].reshape(len(b), -1).double(), z[b].reshape(len(b), -1).double()))
        for b in (order[i : i + batch_size] for i in range(0, n, batch_size))
        if len(b) >= 4
    ]
    return float(np.mean(vals))


@torch.no_grad()
def shuffled(z: Tensor) -> Tensor:
    """``z`` in a seeded shuffled order (the pairing with X broken, Z's own distances kept)."""
    return z[_perm(len(z), 0)]


@torch.no_grad()
def floors(
    x: Tensor, y: Tensor, z: Tensor, n_classes: int, batch_size: int, block_size: int = 1024
) -> dict[str, float]:
    """The real pairing's per-batch DCOR and all four floors for one model's test activations ``z``.

    Keys: ``batch_dcor``, ``batch_dcor_shuffled``, ``leakage_dcor_shuffled``, ``floor_label_dcor``,
    ``floor_label_batch_dcor`` (see the module doc).
    """
    label = onehot(y, n_classes)
    zs = shuffled(z)
    return {
        "batch_dcor": per_batch(x, z, batch_size),
        "batch_dcor_shuffled": per_batch(x, zs, batch_size),
        "leakage_dcor_shuffled": leakage(x, zs, block_size=block_size)["dcor"],
        "floor_label_dcor": leakage(x, label, block_size=block_size)["dcor"],
        "floor_label_batch_dcor": per_batch(x, label, batch_size),
    }
