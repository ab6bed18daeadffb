"""Distance correlation (Szekely, Rizzo & Bakirov 2007), as NoPeek uses it, and the NoPeek loss.

Both inputs are batches: the first dimension indexes samples, every other dimension is
flattened, so ``x`` of shape ``(n, 1, 28, 28)`` is treated as ``n`` points in R^784.

Distances are **Euclidean, not squared**: ``a_ij = ||x_i - x_j||``, ``b_ij = ||z_i - z_j||``.
Everything is computed from four sufficient statistics of the distance matrices, which lets the
same code run on a whole batch (training) or block by block over a large test set (leakage):

    S_ab = sum_ij a_ij b_ij            R^a_i = sum_j a_ij          T_a = sum_i R^a_i

**Biased V-statistic** (the paper's estimator; double centring ``A = a - rowmean - colmean +
grandmean``, ``dCov^2_n = mean(A * B)``):

    n^2 dCov^2_n(x, z) = S_ab - (2/n) sum_i R^a_i R^b_i + T_a T_b / n^2
    DCOR(x, z)         = sqrt( dCov^2_n(x, z) / sqrt(dCov^2_n(x, x) dCov^2_n(z, z)) )

It is the **square root** form (what the paper and its authors' code report as DCOR), and it is
defined as 0 when either distance variance is 0.

**Bias-corrected** squared distance correlation (U-centring, Szekely & Rizzo 2014):

    n(n-3) Omega(x, z) = S_ab - (2/(n-2)) sum_i R^a_i R^b_i + T_a T_b / ((n-1)(n-2))
    dCor^2_U(x, z)     = Omega(x, z) / sqrt(Omega(x, x) Omega(z, z))

It needs n >= 4, is ~0 for independent data at any dimension, and can be slightly negative.
This is the ``dcor`` package's ``u_distance_correlation_sqr``.

Numerical safety (values *and* gradients stay finite): squared distances come from the Gram
form ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j``; entries at or below a round-off tolerance (relative to the
squared norms, ``64 * eps(dtype)``) count as exactly zero distance, value and gradient. That makes
the diagonal, duplicate rows and constant activations exact zeros (so constant activations give
DCOR = 0 as the definition requires), where the authors' code clamps squared distances at 1e-7 and
so puts sqrt(1e-7) on the diagonal. Square roots of ratios are taken only of values above a tiny
floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "DcorStats",
    "distance_correlation",
    "distance_correlation_unbiased_sqr",
    "distance_matrix",
    "leakage",
    "nopeek_loss",
]


def _check_pair(x: Tensor, z: Tensor, min_n: int = 2) -> tuple[Tensor, Tensor]:
    """Flatten two batches to (n, d) and check them; one clear error for each problem."""
    if x.dim() < 1 or z.dim() < 1:
        raise ValueError("distance correlation: x and z must be batches (first dimension = samples)")
    if x.shape[0] != z.shape[0]:
        raise ValueError(
            f"distance correlation: x has {x.shape[0]} samples but z has {z.shape[0]}; "
            "both must hold the same samples in the same order"
        )
    n = x.shape[0]
    if n < min_n:
        raise ValueError(f"distance correlation: needs at least {min_n} samples, got {n}")
    x2 = x.reshape(n, -1)
    z2 = z.reshape(n, -1)
    for name, t in (("x", x2), ("z", z2)):
        if not torch.is_floating_point(t):
            raise TypeError(f"distance correlation: {name} must be a floating-point tensor, got {t.dtype}")
        if not bool(torch.isfinite(t.detach()).all()):
            raise ValueError(f"distance correlation: {name} contains NaN or inf values")
    return x2, z2


def distance_matrix(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Euclidean distances ``||x_i - y_j||`` between rows of two (n, d) / (m, d) matrices.

    Uses the Gram form (one matrix product). Squared distances within ``64 eps (|x_i|^2+|y_j|^2)``
    of zero are set to exactly 0 with zero gradient, so the result is finite and differentiable at
    coincident points. ``y=None`` means ``y = x`` (then the diagonal is exactly zero).
    """
    same = y is None
    y = x if y is None else y
    sx = (x * x).sum(dim=1)
    sy = sx if same else (y * y).sum(dim=1)
    scale = sx[:, None] + sy[None, :]
    d2 = scale - 2.0 * (x @ y.T)
    tol = 64.0 * torch.finfo(x.dtype).eps * scale + torch.finfo(x.dtype).tiny
    keep = d2 > tol
    if same:
        keep = keep & ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return torch.where(keep, torch.sqrt(torch.where(keep, d2, torch.ones_like(d2))), torch.zeros_like(d2))


@dataclass
class DcorStats:
    """Sufficient statistics of two distance matrices a, b over n samples (see module doc)."""

    n: int
    s_ab: Tensor
    s_aa: Tensor
    s_bb: Tensor
    r_a: Tensor  # row sums of a, shape (n,)
    r_b: Tensor  # row sums of b, shape (n,)

    @classmethod
    def from_distances(cls, a: Tensor, b: Tensor) -> "DcorStats":
        return cls(
            n=a.shape[0],
            s_ab=(a * b).sum(),
            s_aa=(a * a).sum(),
            s_bb=(b * b).sum(),
            r_a=a.sum(dim=1),
            r_b=b.sum(dim=1),
        )

    def _cross(self, s: Tensor, r1: Tensor, r2: Tensor, unbiased: bool) -> Tensor:
        n = self.n
        rr = (r1 * r2).sum()
        tt = r1.sum() * r2.sum()
        if unbiased:
            return (s - 2.0 * rr / (n - 2) + tt / ((n - 1) * (n - 2))) / (n * (n - 3))
        return (s - 2.0 * rr / n + tt / n**2) / n**2

    def dcov2(self, unbiased: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(dCov^2(x, z), dVar^2(x), dVar^2(z)) with the V- or U-statistic."""
        return (
            self._cross(self.s_ab, self.r_a, self.r_b, unbiased),
            self._cross(self.s_aa, self.r_a, self.r_a, unbiased),
            self._cross(self.s_bb, self.r_b, self.r_b, unbiased),
        )

    def dcor(self) -> Tensor:
        """The paper's DCOR: sqrt of the V-statistic dCor^2 (0 when a distance variance is 0)."""
        r2 = self._ratio(unbiased=False).clamp(min=0.0)
        floor = torch.finfo(r2.dtype).tiny ** 0.5
        return torch.where(r2 > floor, torch.sqrt(torch.where(r2 > floor, r2, torch.ones_like(r2))), torch.zeros_like(r2))

    def dcor_unbiased_sqr(self) -> Tensor:
        """Bias-corrected dCor^2 (Szekely & Rizzo 2014); may be slightly negative."""
        if self.n < 4:
            raise ValueError(f"bias-corrected distance correlation needs at least 4 samples, got {self.n}")
        return self._ratio(unbiased=True)

    def _ratio(self, unbiased: bool) -> Tensor:
        cov, vx, vz = self.dcov2(unbiased)
        prod = vx * vz
        ok = (vx > 0) & (vz > 0) & (prod > 0)
        denom = torch.sqrt(torch.where(ok, prod, torch.ones_like(prod)))
        return torch.where(ok, cov / denom, torch.zeros_like(cov))


def _stats(x: Tensor, z: Tensor, min_n: int) -> DcorStats:
    x2, z2 = _check_pair(x, z, min_n=min_n)
    dtype = torch.promote_types(x2.dtype, z2.dtype)
    return DcorStats.from_distances(distance_matrix(x2.to(dtype)), distance_matrix(z2.to(dtype)))


def distance_correlation(x: Tensor, z: Tensor) -> Tensor:
    """The paper's DCOR(x, z): biased V-statistic, Euclidean distances, square-root form, in [0, 1].

    Differentiable with respect to both inputs; the cost is two Gram products (n^2 (d_x + d_z)).
    """
    return _stats(x, z, min_n=2).dcor()


def distance_correlation_unbiased_sqr(x: Tensor, z: Tensor) -> Tensor:
    """Bias-corrected squared distance correlation (U-statistic); needs n >= 4."""
    return _stats(x, z, min_n=4).dcor_unbiased_sqr()


@torch.no_grad()
def leakage(x: Tensor, z: Tensor, block_size: int = 1024, dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """Leakage DCOR(X, Z) over a whole (test) set, block by block (float64 by default).

    Memory is O(n * block_size) for the distance blocks instead of O(n^2); the result equals the
    unblocked statistics (tested). Returns ``{"dcor": V-statistic DCOR, "dcor_unbiased_sqr": ...}``.
    Sums are accumulated in float64 whatever ``dtype`` the distances are computed in.
    """
    x2, z2 = _check_pair(x, z, min_n=4)
    x2 = x2.to(dtype)
    z2 = z2.to(dtype)
    n = x2.shape[0]
    if block_size < 1:
        raise ValueError(f"leakage: block_size must be >= 1, got {block_size}")
    zero = torch.zeros((), dtype=torch.float64, device=x2.device)
    s_ab, s_aa, s_bb = zero.clone(), zero.clone(), zero.clone()
    r_a = torch.zeros(n, dtype=torch.float64, device=x2.device)
    r_b = torch.zeros_like(r_a)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        a = distance_matrix(x2[start:stop], x2)
        b = distance_matrix(z2[start:stop], z2)
        # the diagonal of this block: force exact zeros as in the unblocked matrix
        idx = torch.arange(stop - start, device=x2.device)
        a[idx, idx + start] = 0.0
        b[idx, idx + start] = 0.0
        a, b = a.double(), b.double()
        s_ab += (a * b).sum()
        s_aa += (a * a).sum()
        s_bb += (b * b).sum()
        r_a[start:stop] = a.sum(dim=1)
        r_b[start:stop] = b.sum(dim=1)
    stats = DcorStats(n=n, s_ab=s_ab, s_aa=s_aa, s_bb=s_bb, r_a=r_a, r_b=r_b)
    return {"dcor": float(stats.dcor()), "dcor_unbiased_sqr": float(stats.dcor_unbiased_sqr())}


def nopeek_loss(
    x: Tensor, z: Tensor, task_loss: Tensor, alpha_dcor: float, alpha_task: float
) -> Tensor:
    """The NoPeek objective ``alpha_dcor * DCOR(X, Z) + alpha_task * task_loss`` for one batch.

    In the split protocol the two terms are computed by different parties (see
    :mod:`nopeek_repro.split`); this function is the whole objective in one place, for reading
    and for tests.
    """
    if alpha_dcor == 0:
        return alpha_task * task_loss
    return alpha_dcor * distance_correlation(x, z) + alpha_task * task_loss
