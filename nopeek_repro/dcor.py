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

**Centring first.** Squared distances come from the Gram form ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j``,
which cancels catastrophically when the rows share a large common offset: the terms are of size
``|offset|^2``, the result of size ``|x_i - x_j|^2``. (Measured: a float32 activation ``c + 0.1 *
tanh(X W)``, which a network reaches with ReLU outputs plus a bias, gave DCOR exactly 0 with a zero
gradient for c >= 10, where the true value is 0.9986 for every c; the NoPeek term silently stopped
acting.) Distances do not change under translation, so every path first subtracts the column mean
from x and from z: the training path (mean in the working dtype: its own round-off leaves a common
offset of ~eps |mean|, harmless, and where rows share a large offset the subtraction is exact), the
reference path :func:`distance_matrix` (mean accumulated in float64), and :func:`leakage` (ONE
mean over the whole set, accumulated in float64 block by block, subtracted from every block: a
per-block mean would change the distances between blocks). The norms, Gram products and round-off
tolerances below are those of the centred rows. The training path's backward uses the centred
inputs too: ``(diag(rowsum W) - W) 1 = 0`` for the symmetric W below, so the product is the same,
and it does not cancel either.

Numerical safety (values *and* gradients stay finite): entries of the Gram form at or below a
round-off tolerance (relative to the squared norms of the centred rows, ``64 * eps(dtype)``) count
as exactly zero distance, value and gradient. That makes the diagonal, duplicate rows and constant
activations exact zeros (so constant activations give DCOR = 0 as the definition requires), where
the authors' code clamps squared distances at 1e-7 and so puts sqrt(1e-7) on the diagonal. The
price: two rows closer than ~``sqrt(128 eps)`` of their centred norms (4e-3 in float32, 2e-7 in
float64) also count as coincident. Square roots of ratios are taken only of values above a tiny
floor.

**Speed** (training). :func:`distance_correlation` is a custom autograd function whose cost is
close to the matrix products any exact forward and backward needs: the Gram matrices X X^T and
Z Z^T and, for the gradient, one (n x n) @ (n x d_z) product. Its only n x n allocations are the
two Gram matrices; the element-wise work is done in place, row block by row block (about 2^18
elements, so that the several passes over a block run in cache): Gram -> distances (with the
round-off mask) and row sums; then the centred blocks A, B (in scratch) give ``S_ab, S_aa, S_bb``
of the centred matrices (row-wise dot products summed in float64: no cancellation, float32 keeps
its accuracy); then, only when Z needs a gradient, ``W = (A + rho B) / b`` (0 where b_ij is a zero
distance) is written over the distance rows, and the backward is one product,
``dDCOR/dZ = 2 k (diag(rowsum W) - W) Z`` (from ``dS_ab/db_ij = A_ij``, ``dS_bb/db_ij = 2 B_ij``;
``k``, ``rho`` in :func:`_dcor_and_slopes`). The product for X is done only if X needs a gradient.
NaN/inf inputs are caught for free on the Gram diagonal. :func:`_reference_distance_correlation`
is the plain autograd formula it is tested against. Device follows the inputs; deterministic on
the CPU; differentiable once (no double backward). Centring adds one n x d copy of each input and
two O(n d) passes, small next to the O(n^2 d) products.

**Memory** (leakage). :func:`leakage` makes one pass over the row blocks for the column means, then
walks over pairs of row blocks (I <= J, the distance matrices are symmetric), converts only the two
blocks, centred, to its working dtype (float64 by default; into reused buffers) and accumulates the
sufficient statistics in float64, so a whole test set never exists as an n x n matrix nor as a
float64 copy. The reference path (:func:`distance_correlation_unbiased_sqr`,
:func:`_reference_distance_correlation`) also sums the statistics in float64 (its distances are in
the inputs' dtype): summed in float32, their cancellation cost the bias-corrected dCor^2 up to
8e-4 (measured, the issue's example above).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "DcorStats",
    "distance_correlation",
    "distance_correlation_unbiased_sqr",
    "distance_matrix",
    "leakage",
    "nopeek_loss",
]

#: squared distances at or below ``TOL_ULPS * eps * (|y_i|^2 + |y_j|^2) + tiny`` are exact zeros
TOL_ULPS = 64.0


def _check_pair(x: Tensor, z: Tensor, min_n: int = 2, check_finite: bool = True) -> tuple[Tensor, Tensor]:
    """Flatten two batches to (n, d) and check them; one clear error for each problem.

    ``check_finite=False`` leaves the NaN/inf check to the caller (the fast DCOR does it for free
    on the Gram diagonal, with the same message).
    """
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
        if check_finite and not bool(torch.isfinite(t.detach()).all()):
            raise ValueError(f"distance correlation: {name} contains NaN or inf values")
    return x2, z2


def _work_dtype(x: Tensor, z: Tensor) -> torch.dtype:
    """The common dtype, at least float32 (half-precision Gram forms are useless for distances)."""
    return torch.promote_types(torch.promote_types(x.dtype, z.dtype), torch.float32)


def _acc_dtype(device: torch.device) -> torch.dtype:
    """Accumulator for sums of n^2 terms: float64 wherever the device has it."""
    return torch.float32 if device.type == "mps" else torch.float64


def distance_matrix(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Euclidean distances ``||x_i - y_j||`` between rows of two (n, d) / (m, d) matrices.

    Both are first translated by one common vector, the column mean of their rows (accumulated in
    float64 where the device has it): distances do not change, but the Gram form below no longer
    cancels catastrophically when the rows share a large offset (see module doc). Then one matrix
    product; squared distances within ``64 eps (|x_i|^2+|y_j|^2)`` (norms of the translated rows) of
    zero are set to exactly 0 with zero gradient, so the result is finite and differentiable at
    coincident points. ``y=None`` means ``y = x`` (then the diagonal is exactly zero).
    """
    same = y is None
    acc = _acc_dtype(x.device)
    if same:
        x = x - x.mean(dim=0, keepdim=True, dtype=acc).to(x.dtype)
        y = x
    else:
        assert y is not None  # same is False exactly when y was given
        m = (x.sum(dim=0, keepdim=True, dtype=acc) + y.sum(dim=0, keepdim=True, dtype=acc)) / (x.shape[0] + y.shape[0])
        x, y = x - m.to(x.dtype), y - m.to(y.dtype)
    sx = (x * x).sum(dim=1)
    sy = sx if same else (y * y).sum(dim=1)
    scale = sx[:, None] + sy[None, :]
    d2 = scale - 2.0 * (x @ y.T)
    tol = TOL_ULPS * torch.finfo(x.dtype).eps * scale + torch.finfo(x.dtype).tiny
    keep = d2 > tol
    if same:
        keep = keep & ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return torch.where(keep, torch.sqrt(torch.where(keep, d2, torch.ones_like(d2))), torch.zeros_like(d2))


def _tolerance_split(s: Tensor) -> tuple[Tensor, Tensor]:
    """``(u, v)`` with ``u_i + u_j`` = the round-off tolerance ``64 eps (s_i + s_j) + tiny`` of a
    squared distance between rows of squared norms ``s_i``, ``s_j``, and ``v = s - u``."""
    fi = torch.finfo(s.dtype)
    u = s * (TOL_ULPS * fi.eps) + fi.tiny / 2
    return u, s - u


def _masked_sqdist_(g: Tensor, row: tuple[Tensor, Tensor], col: tuple[Tensor, Tensor]) -> Tensor:
    """In place: Gram block ``g_ij = y_i . w_j`` -> squared distances ``s_i + s_j - 2 g_ij``.

    ``row``, ``col``: :func:`_tolerance_split` of the squared norms of the block's rows and columns.
    Entries at or below the round-off tolerance ``tol_ij = 64 eps (s_i + s_j) + tiny`` become -inf
    (so that ``relu`` then gives an exact 0): the test is done on ``e = d2 - tol`` (two broadcast
    passes), entries with ``e <= 0`` are set to -inf by one threshold pass, and the tolerance is added
    back (two passes). With ``s`` taken from the Gram diagonal the diagonal is exactly zero, and so
    are duplicate rows.
    """
    (u_row, v_row), (u_col, v_col) = row, col
    torch.add(v_row[:, None], g, alpha=-2.0, out=g)
    g.add_(v_col[None, :])  # e = d2 - tol
    # keep e > 0, the rest -inf (threshold_ exists at runtime but is missing from torch's functional.pyi)
    F.threshold_(g, 0.0, -math.inf)  # type: ignore[attr-defined]
    return g.add_(u_row[:, None]).add_(u_col[None, :])  # d2 where kept


#: element-wise work on n x n matrices is done in row blocks of about this many elements, so that
#: the several passes over a block run in cache (CPU); on other devices the whole matrix is one block
_BLOCK_ELEMS_CPU = 1 << 18


def _row_blocks(n: int, device: torch.device) -> list[tuple[int, int]]:
    rows = n if device.type != "cpu" else max(1, min(n, _BLOCK_ELEMS_CPU // n))
    return [(i, min(i + rows, n)) for i in range(0, n, rows)]


def _gram_to_distances_(g: Tensor, blocks: list[tuple[int, int]], name: str, y: Tensor) -> Tensor:
    """In place, block by block: Gram matrix -> Euclidean distance matrix; returns its row sums.

    Also the finiteness check of ``y`` for free: a NaN or inf anywhere in a row makes its squared
    norm (the Gram diagonal) non-finite.
    """
    s = g.diagonal().clone()
    _check_norms(s, y, name)
    u, v = _tolerance_split(s)
    rows = torch.empty_like(s)
    for i0, i1 in blocks:
        blk = _masked_sqdist_(g[i0:i1], (u[i0:i1], v[i0:i1]), (u, v))
        blk.relu_().sqrt_()
        torch.sum(blk, dim=1, out=rows[i0:i1])
    return rows


def _check_norms(s: Tensor, y: Tensor, name: str) -> None:
    """NaN/inf check for free: a NaN or inf anywhere in a row of y makes its squared norm non-finite."""
    if not bool(torch.isfinite(s).all()):
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"distance correlation: {name} contains NaN or inf values")
        raise ValueError(f"distance correlation: {name} is too large for {y.dtype}: its squared norms overflow")


def _centring(rows: Tensor, acc: torch.dtype) -> Tensor:
    """``m`` with ``d - m_i - m_j`` = the double-centred ``d`` (rowmean + colmean - grandmean/2 each)."""
    n = rows.shape[0]
    r = rows.to(acc)
    return (r / n - r.sum() / (2 * n * n)).to(rows.dtype)


def _centred_block(d: Tensor, m: Tensor, i0: int, i1: int, out: Tensor) -> Tensor:
    o = out[: i1 - i0]
    torch.sub(d[i0:i1], m[i0:i1, None], out=o)
    return o.sub_(m[None, :])


def _rowdot(p: Tensor, q: Tensor) -> Tensor:
    """Row-wise dot products (each row summed in the working dtype, accurately)."""
    return torch.linalg.vecdot(p, q, dim=1)


def _inner(p: Tensor, q: Tensor, acc: torch.dtype) -> Tensor:
    """``sum_ij p_ij q_ij``: row-wise dot products summed in ``acc``."""
    return _rowdot(p, q).to(acc).sum()


def _dcor_and_slopes(s_ab: Tensor, s_aa: Tensor, s_bb: Tensor, dtype: torch.dtype):
    """DCOR from the centred inner products and the constants of its derivative.

    With ``R = S_ab / sqrt(S_aa S_bb)`` and ``DCOR = sqrt(R)``:
    ``dDCOR/db_ij = k (A_ij + rho_z B_ij)``, ``dDCOR/da_ij = k (B_ij + rho_x A_ij)`` where
    ``k = 1 / (2 DCOR sqrt(S_aa S_bb))``, ``rho_z = -R sqrt(S_aa / S_bb)``,
    ``rho_x = -R sqrt(S_bb / S_aa)``; all three are 0 where DCOR is 0 (as the reference's gradient).
    """
    prod = s_aa * s_bb
    ok = (s_aa > 0) & (s_bb > 0) & (prod > 0)
    one, zero = torch.ones_like(prod), torch.zeros_like(prod)
    root = torch.sqrt(torch.where(ok, prod, one))
    ratio = torch.where(ok, s_ab / root, zero)
    r2 = ratio.clamp(min=0.0)
    pos = r2 > torch.finfo(dtype).tiny ** 0.5
    value = torch.where(pos, torch.sqrt(torch.where(pos, r2, one)), zero)
    k = torch.where(pos, 1.0 / (2.0 * torch.where(pos, value, one) * root), zero)
    s_aa1, s_bb1 = torch.where(ok, s_aa, one), torch.where(ok, s_bb, one)
    rho_z = torch.where(pos, -ratio * torch.sqrt(s_aa1 / s_bb1), zero)
    rho_x = torch.where(pos, -ratio * torch.sqrt(s_bb1 / s_aa1), zero)
    return value, k, rho_x, rho_z


class _DistanceCorrelation(torch.autograd.Function):
    """DCOR(x, z) for (n, d) inputs of one floating dtype, with an analytic backward (see module doc).

    Forward: the two Gram matrices (on the CPU the only n x n allocations), then sweeps over row blocks:
    (1) Gram -> distances in place, row sums; (2) centred blocks in scratch, inner products;
    (3) only if a gradient is needed: ``W = (A + rho_z B) / b`` (0 at zero distances) written over
    the distance rows and its row sums. The backward is ``2 g k (diag(rowsum W) - W) @ z``, with the
    column-centred z (the same product: W is symmetric, so ``(diag(rowsum W) - W) 1 = 0``; and it
    does not cancel when z has a large offset).
    """

    @staticmethod
    def forward(ctx, x: Tensor, z: Tensor, need_x: bool, need_z: bool) -> Tensor:
        n, dtype, acc = x.shape[0], x.dtype, _acc_dtype(x.device)
        blocks = _row_blocks(n, x.device)
        x0, z0 = x, z  # (for the error messages)
        xc: Tensor | None  # the centred inputs, kept for the backward only where a gradient is needed
        zc: Tensor | None
        xc, zc = _centre_columns(x), _centre_columns(z)  # distances unchanged, no cancellation (module doc)
        a = xc @ xc.T
        ra = _gram_to_distances_(a, blocks, "x", x0)
        b = zc @ zc.T
        rb = _gram_to_distances_(b, blocks, "z", z0)
        if not need_x:
            xc = None
        if not need_z:
            zc = None
        ma, mb = _centring(ra, acc), _centring(rb, acc)
        rows0 = blocks[0][1]
        sa, sb = a.new_empty(rows0, n), b.new_empty(rows0, n)
        dots = a.new_empty(3, n)
        for i0, i1 in blocks:
            ca = _centred_block(a, ma, i0, i1, sa)
            cb = _centred_block(b, mb, i0, i1, sb)
            dots[0, i0:i1] = _rowdot(ca, cb)
            dots[1, i0:i1] = _rowdot(ca, ca)
            dots[2, i0:i1] = _rowdot(cb, cb)
        s_ab, s_aa, s_bb = dots.to(acc).sum(dim=1).unbind()
        value, k, rho_x, rho_z = _dcor_and_slopes(s_ab, s_aa, s_bb, dtype)
        wa = wb = None
        if need_x or need_z:
            rho_x, rho_z = rho_x.to(dtype), rho_z.to(dtype)
            sw = a.new_empty(rows0, n) if need_x and need_z else None
            wa_rows = a.new_empty(n) if need_x else None
            wb_rows = b.new_empty(n) if need_z else None
            for i0, i1 in blocks:
                ca = _centred_block(a, ma, i0, i1, sa)
                cb = _centred_block(b, mb, i0, i1, sb)
                if need_x:  # W_x = (B + rho_x A) / a over the rows of a
                    assert wa_rows is not None  # allocated above when need_x
                    t = torch.addcmul(cb, ca, rho_x, out=cast(Tensor, sw)[: i1 - i0] if need_z else cb)
                    _divide_rows_(t, a[i0:i1], wa_rows[i0:i1])
                if need_z:  # W_z = (A + rho_z B) / b over the rows of b
                    assert wb_rows is not None  # allocated above when need_z
                    t = torch.addcmul(ca, cb, rho_z, out=ca)
                    _divide_rows_(t, b[i0:i1], wb_rows[i0:i1])
            wa = (a, wa_rows) if need_x else None
            wb = (b, wb_rows) if need_z else None
        del sa, sb
        saved = [xc, *wa] if wa else [None, None, None]
        saved += [zc, *wb] if wb else [None, None, None]
        ctx.save_for_backward(*saved, k.to(dtype))
        return value.to(dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, wx, wx_rows, z, wz, wz_rows, k = ctx.saved_tensors
        scale = 2.0 * grad * k
        gx = gz = None
        if wx is not None and ctx.needs_input_grad[0]:
            gx = _grad_from_weights(wx, wx_rows, x, scale)
        if wz is not None and ctx.needs_input_grad[1]:
            gz = _grad_from_weights(wz, wz_rows, z, scale)
        return gx, gz, None, None


def _centre_columns(y: Tensor) -> Tensor:
    """``y`` minus its column mean, in y's dtype (a translation: every distance is unchanged).

    The mean's own round-off (~eps |mean|) only leaves a tiny common offset, harmless; where the
    rows share a large offset the subtraction itself is exact (Sterbenz).
    """
    return y - y.mean(dim=0, keepdim=True)


def _divide_rows_(num: Tensor, dist: Tensor, rows_out: Tensor) -> None:
    """``dist <- num / dist`` with 0 where the distance is 0; row sums into ``rows_out``."""
    torch.div(num, dist, out=dist)
    dist.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    torch.sum(dist, dim=1, out=rows_out)


def _grad_from_weights(w: Tensor, w_rows: Tensor, y: Tensor, scale: Tensor) -> Tensor:
    """``scale * (diag(rowsum W) - W) @ y``: the gradient of a function of the distances of y."""
    out = w_rows[:, None] * y
    return out.addmm_(w, y, alpha=-1.0).mul_(scale)


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
        return torch.where(
            r2 > floor, torch.sqrt(torch.where(r2 > floor, r2, torch.ones_like(r2))), torch.zeros_like(r2)
        )

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


def _stats(x: Tensor, z: Tensor, min_n: int) -> tuple[DcorStats, torch.dtype]:
    """Sufficient statistics of the inputs' distance matrices, and the inputs' common dtype.

    Distances are computed in that dtype, the statistics in float64 (where the device has it): in
    float32 the cancellation in ``S - (2/n) sum R R + T T / n^2`` cost the bias-corrected dCor^2
    up to 8e-4 (measured) when the distances are concentrated (high dimension).
    """
    x2, z2 = _check_pair(x, z, min_n=min_n)
    dtype = torch.promote_types(x2.dtype, z2.dtype)
    acc = _acc_dtype(x2.device)
    a, b = distance_matrix(x2.to(dtype)), distance_matrix(z2.to(dtype))
    return DcorStats.from_distances(a.to(acc), b.to(acc)), dtype


def _reference_distance_correlation(x: Tensor, z: Tensor) -> Tensor:
    """The plain autograd formula (distance matrices, sufficient statistics): the tests' reference."""
    stats, dtype = _stats(x, z, min_n=2)
    return stats.dcor().to(dtype)


def distance_correlation(x: Tensor, z: Tensor) -> Tensor:
    """The paper's DCOR(x, z): biased V-statistic, Euclidean distances, square-root form, in [0, 1].

    Differentiable with respect to both inputs (analytic backward; the (n x n) @ (n x d) product of
    the backward is only done for inputs that need a gradient). Cost: the Gram products
    n^2 (d_x + d_z) plus a few element-wise passes over n x n matrices and over the inputs
    (centring their columns, see module doc).
    """
    x2, z2 = _check_pair(x, z, min_n=2, check_finite=False)
    dtype = _work_dtype(x2, z2)
    grad = torch.is_grad_enabled()
    need_x, need_z = grad and x2.requires_grad, grad and z2.requires_grad
    value = _DistanceCorrelation.apply(x2.to(dtype), z2.to(dtype), need_x, need_z)
    out_dtype = torch.promote_types(x2.dtype, z2.dtype)
    return value if out_dtype == dtype else value.to(out_dtype)


def distance_correlation_squared_distances(x: Tensor, z: Tensor) -> Tensor:
    """The statistic several public NoPeek implementations train with: the V-statistic distance
    correlation (square-root form) computed with **squared** Euclidean distances. Not the paper's DCOR.

    With squared distances the double-centred distance matrix is ``-2 K`` for the Gram matrix
    ``K = Xc Xc^T`` of the column-centred rows, so the statistic is a closed form,
    ``sqrt(<Kx, Kz>_F / (|Kx|_F |Kz|_F))``: the square root of the RV coefficient (Robert & Escoufier
    1976). It measures only linear dependence (0 for independent *and* for merely uncorrelated
    inputs). Differentiable by autograd; 0 when either input is constant. Computed in float64."""
    x2, z2 = _check_pair(x, z, min_n=2, check_finite=True)
    xc = x2.double() - x2.double().mean(0)
    zc = z2.double() - z2.double().mean(0)
    kx, kz = xc @ xc.T, zc @ zc.T
    den = torch.linalg.matrix_norm(kx) * torch.linalg.matrix_norm(kz)
    if float(den.detach()) == 0.0:
        return ((kx.sum() + kz.sum()) * 0.0).to(torch.promote_types(x2.dtype, z2.dtype))  # keeps the graph
    rv = (kx * kz).sum() / den
    return rv.clamp(min=0.0).sqrt().to(torch.promote_types(x2.dtype, z2.dtype))


STATISTICS = {"euclidean": distance_correlation, "squared": distance_correlation_squared_distances}
"""What ``nopeek.distance`` names: the statistic the client's loss uses (``euclidean``, the paper's)."""


def distance_correlation_unbiased_sqr(x: Tensor, z: Tensor) -> Tensor:
    """Bias-corrected squared distance correlation (U-statistic); needs n >= 4."""
    stats, dtype = _stats(x, z, min_n=4)
    return stats.dcor_unbiased_sqr().to(dtype)


@torch.no_grad()
def leakage(x: Tensor, z: Tensor, block_size: int = 1024, dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """Leakage DCOR(X, Z) over a whole (test) set, block by block (float64 by default).

    First one pass over the row blocks gives the column means of X and of Z over the whole set
    (accumulated in float64); then it loops over pairs of row blocks I <= J (distance matrices are
    symmetric: off-diagonal blocks count twice), converting only the two blocks to ``dtype``, minus
    the whole set's column mean (one common translation for every block: distances unchanged, no
    cancellation in the Gram form, see module doc), into buffers that are reused. So the extra memory
    is O(block_size * (d_x + d_z + block_size)) whatever n is, and the Gram work is about half of
    the full n^2 (d_x + d_z). The result equals the unblocked statistics (tested).
    Returns ``{"dcor": V-statistic DCOR, "dcor_unbiased_sqr": bias-corrected dCor^2}``. Sums are
    accumulated in float64 whatever ``dtype`` the distances are computed in.
    """
    x2, z2 = _check_pair(x, z, min_n=4, check_finite=False)  # checked block by block (no n x d temporaries)
    if block_size < 1:
        raise ValueError(f"leakage: block_size must be >= 1, got {block_size}")
    n = x2.shape[0]
    dev = x2.device
    acc = _acc_dtype(dev)
    bs = min(block_size, n)
    bounds = [(i, min(i + bs, n)) for i in range(0, n, bs)]
    sides: list[dict[str, Any]] = []
    for name, y in (("x", x2), ("z", z2)):
        sides.append(
            {
                "name": name,
                "y": y,
                # subtracted in the wider of y's dtype and ``dtype``, then rounded into the buffer
                "mean": _column_mean_blocked(y, bounds, name, acc).to(torch.promote_types(y.dtype, dtype)),
                "buf_i": y.new_empty((bs, y.shape[1]), dtype=dtype),
                "buf_j": y.new_empty((bs, y.shape[1]), dtype=dtype),
                "gram": y.new_empty(bs * bs, dtype=dtype),
                "sq": y.new_empty(n, dtype=dtype),  # squared norms, from the diagonal blocks' Gram diagonal
                "rows": torch.zeros(n, dtype=acc, device=dev),
            }
        )
    s_ab = torch.zeros((), dtype=acc, device=dev)
    s_aa, s_bb = s_ab.clone(), s_ab.clone()
    for jb, (j0, j1) in enumerate(bounds):
        blocks_j = [_centred_block_as(s["y"], s["mean"], j0, j1, s["buf_j"]) for s in sides]
        for ib in range(jb, -1, -1):  # the diagonal block first: it gives the squared norms of J
            i0, i1 = bounds[ib]
            same = ib == jb
            dist = []
            for s, yj in zip(sides, blocks_j):
                yi = yj if same else _centred_block_as(s["y"], s["mean"], i0, i1, s["buf_i"])
                g = torch.mm(yi, yj.T, out=s["gram"][: (i1 - i0) * (j1 - j0)].view(i1 - i0, j1 - j0))
                if same:
                    s["sq"][j0:j1] = g.diagonal()
                    _check_norms(s["sq"][j0:j1], s["y"][j0:j1], s["name"])
                sq = s["sq"]
                _masked_sqdist_(g, _tolerance_split(sq[i0:i1]), _tolerance_split(sq[j0:j1])).relu_().sqrt_()
                g = g.to(acc)  # a float32 block's sums and products in float64 (no-op for float64)
                s["rows"][i0:i1] += g.sum(dim=1)
                if not same:
                    s["rows"][j0:j1] += g.sum(dim=0)
                dist.append(g)
            a, b = dist
            w = 1.0 if same else 2.0
            s_ab += w * _inner(a, b, acc)
            s_aa += w * _inner(a, a, acc)
            s_bb += w * _inner(b, b, acc)
    stats = DcorStats(n=n, s_ab=s_ab, s_aa=s_aa, s_bb=s_bb, r_a=sides[0]["rows"], r_b=sides[1]["rows"])
    return {"dcor": float(stats.dcor()), "dcor_unbiased_sqr": float(stats.dcor_unbiased_sqr())}


def _column_mean_blocked(y: Tensor, bounds: list[tuple[int, int]], name: str, acc: torch.dtype) -> Tensor:
    """Column mean of y over all its rows, summed block by block in ``acc`` (O(block) extra memory).

    Also the NaN/inf check of y, block by block: a non-finite block sum means a non-finite entry
    (or, in a float64 input near its range, an overflow: the clear error for that comes later).
    """
    total = torch.zeros(y.shape[1], dtype=acc, device=y.device)
    for i0, i1 in bounds:
        part = y[i0:i1].to(acc).sum(dim=0)
        if not bool(torch.isfinite(part).all()) and not bool(torch.isfinite(y[i0:i1]).all()):
            raise ValueError(f"distance correlation: {name} contains NaN or inf values")
        total += part
    return total / y.shape[0]


def _centred_block_as(y: Tensor, mean: Tensor, i0: int, i1: int, buf: Tensor) -> Tensor:
    """Rows i0:i1 of y minus ``mean``, rounded into ``buf`` (the working dtype)."""
    out = buf[: i1 - i0]
    torch.sub(y[i0:i1], mean, out=out)
    return out


def nopeek_loss(x: Tensor, z: Tensor, task_loss: Tensor, alpha_dcor: float, alpha_task: float) -> Tensor:
    """The NoPeek objective ``alpha_dcor * DCOR(X, Z) + alpha_task * task_loss`` for one batch.

    In the split protocol the two terms are computed by different parties (see
    :mod:`nopeek_repro.split`); this function is the whole objective in one place, for reading
    and for tests.
    """
    if alpha_dcor == 0:
        return alpha_task * task_loss
    return alpha_dcor * distance_correlation(x, z) + alpha_task * task_loss
