"""Distance correlation: agreement with the `dcor` package, known cases, edge cases, blocking."""

from __future__ import annotations

import functools

import dcor as dcor_ref
import numpy as np
import pytest
import torch

from nopeek_repro.dcor import (
    distance_correlation,
    distance_correlation_unbiased_sqr,
    distance_matrix,
    leakage,
    nopeek_loss,
)


def _pair(n, dx, dz, seed, dependent=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dx, generator=g, dtype=torch.float64)
    w = torch.randn(dx, dz, generator=g, dtype=torch.float64)
    z = (
        torch.tanh(x @ w) + 0.5 * torch.randn(n, dz, generator=g, dtype=torch.float64)
        if dependent
        else torch.randn(n, dz, generator=g, dtype=torch.float64)
    )
    return x, z


@pytest.mark.parametrize("n,dx,dz,seed", [(2, 3, 5, 0), (5, 1, 1, 1), (17, 8, 3, 2), (64, 20, 40, 3), (100, 3, 7, 4)])
def test_v_statistic_matches_dcor_package(n, dx, dz, seed):
    x, z = _pair(n, dx, dz, seed)
    ours = float(distance_correlation(x, z))
    ref = float(np.sqrt(dcor_ref.distance_correlation_sqr(x.numpy(), z.numpy())))
    assert ours == pytest.approx(ref, abs=1e-6)
    # and it is the square-root form the paper uses, not dCor^2
    assert ours == pytest.approx(float(dcor_ref.distance_correlation(x.numpy(), z.numpy())), abs=1e-6)


@pytest.mark.parametrize("n,dx,dz,seed", [(4, 3, 5, 0), (17, 8, 3, 2), (64, 20, 40, 3), (100, 3, 7, 4)])
def test_bias_corrected_matches_dcor_package(n, dx, dz, seed):
    x, z = _pair(n, dx, dz, seed)
    ours = float(distance_correlation_unbiased_sqr(x, z))
    ref = float(dcor_ref.u_distance_correlation_sqr(x.numpy(), z.numpy()))
    assert ours == pytest.approx(ref, abs=1e-6)


def test_distances_are_euclidean_not_squared():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    assert distance_matrix(x)[0, 1].item() == pytest.approx(5.0)


def test_rotated_scaled_copy_has_dcor_one():
    x, _ = _pair(50, 6, 1, 0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    z = 3.7 * x @ q + 2.0
    assert float(distance_correlation(x, z)) == pytest.approx(1.0, abs=1e-9)
    assert float(distance_correlation_unbiased_sqr(x, z)) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_distance_matrix_with_offset_matches_broadcast(dtype):
    """Both forms (one set, two sets) translate by one common vector: no cancellation at offset 1e3."""
    x, z = (t + 1e3 for t in _pair(30, 5, 5, 2))
    x, z = x.to(dtype), z.to(dtype)  # the references use the same (rounded) numbers, in float64
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(distance_matrix(x).double(), _broadcast_distances(x.double()), **tol)
    cross = ((x.double()[:, None] - z.double()[None]) ** 2).sum(-1).sqrt()
    torch.testing.assert_close(distance_matrix(x, z).double(), cross, **tol)


def test_images_are_flattened():
    x = torch.rand(10, 1, 4, 4, dtype=torch.float64)
    z = torch.rand(10, 2, 3, 3, dtype=torch.float64)
    assert float(distance_correlation(x, z)) == pytest.approx(float(distance_correlation(x.flatten(1), z.flatten(1))))


def test_independent_data_v_statistic_is_biased_but_u_statistic_is_not():
    # dimension >> n: the paper's V-statistic is near 1 even for independent data
    x, z = _pair(64, 784, 3136, 0, dependent=False)
    assert float(distance_correlation(x, z)) > 0.9
    assert abs(float(distance_correlation_unbiased_sqr(x, z))) < 0.05


@pytest.mark.parametrize(
    "case",
    ["duplicate_rows", "constant_z", "n2", "all_equal"],
)
def test_value_and_gradient_finite_at_edge_cases(case):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 5, generator=g)
    z = torch.rand(8, 4, generator=g)
    if case == "duplicate_rows":
        x[3] = x[1]
        z[3] = z[1]
    elif case == "constant_z":
        z = torch.full((8, 4), 0.7)
    elif case == "n2":
        x, z = x[:2], z[:2]
    elif case == "all_equal":
        x = torch.ones(8, 5)
        z = torch.ones(8, 4)
    z = z.clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)
    d = distance_correlation(x, z)
    d.backward()
    assert torch.isfinite(d)
    assert torch.isfinite(z.grad).all() and torch.isfinite(x.grad).all()
    if case in ("constant_z", "all_equal"):
        assert d.item() == 0.0  # defined as 0 when a distance variance is 0


def test_duplicate_rows_match_reference():
    x, z = _pair(20, 4, 3, 5)
    x[7], z[7] = x[2], z[2]
    ref = float(dcor_ref.distance_correlation(x.numpy(), z.numpy()))
    assert float(distance_correlation(x, z)) == pytest.approx(ref, abs=1e-6)


def test_float32_close_to_float64():
    x, z = _pair(128, 784, 512, 3)
    d64 = float(distance_correlation(x, z))
    d32 = float(distance_correlation(x.float(), z.float()))
    assert d32 == pytest.approx(d64, abs=1e-4)


def test_gradient_matches_finite_differences():
    x, z = _pair(6, 3, 2, 7)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: distance_correlation(x, t), (z,))


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_blocked_leakage_equals_unblocked(block):
    x, z = _pair(150, 30, 50, 11)
    got = leakage(x, z, block_size=block)
    assert got["dcor"] == pytest.approx(float(distance_correlation(x, z)), abs=1e-12)
    assert got["dcor_unbiased_sqr"] == pytest.approx(float(distance_correlation_unbiased_sqr(x, z)), abs=1e-12)


@pytest.mark.parametrize(
    "x,z,message",
    [
        (torch.rand(1, 3), torch.rand(1, 3), "at least 2 samples"),
        (torch.rand(5, 3), torch.rand(4, 3), "5 samples but z has 4"),
        (torch.tensor([[0.0], [float("nan")]]), torch.rand(2, 1), "x contains NaN or inf"),
        (torch.rand(3, 2), torch.tensor([[0.0], [1.0], [float("inf")]]), "z contains NaN or inf"),
        (torch.ones(3, 2, dtype=torch.int64), torch.rand(3, 2), "floating-point"),
    ],
)
def test_bad_input_raises_clear_error(x, z, message):
    with pytest.raises((ValueError, TypeError), match=message):
        distance_correlation(x, z)


def test_unbiased_needs_four_samples():
    with pytest.raises(ValueError, match="at least 4 samples"):
        distance_correlation_unbiased_sqr(torch.rand(3, 2), torch.rand(3, 2))


def test_nopeek_loss_is_weighted_sum():
    x, z = _pair(10, 3, 4, 0)
    ce = torch.tensor(0.25, dtype=torch.float64)
    got = nopeek_loss(x, z, ce, alpha_dcor=2.0, alpha_task=0.5)
    assert float(got) == pytest.approx(2.0 * float(distance_correlation(x, z)) + 0.125)
    assert float(nopeek_loss(x, z, ce, alpha_dcor=0.0, alpha_task=1.0)) == pytest.approx(0.25)


# ----------------------------------------------------------------------------- adversarial inputs
#
# References that do not share the kit's Gram form: the `dcor` package on float64 NumPy arrays (it
# broadcasts differences x_i - x_j) and a plain broadcast distance in float64 autograd. Tolerances:
# float32 inputs are compared with the float64 truth *for the same float32 numbers*, so the only
# error is the kit's float32 arithmetic: distances to a few eps (1.2e-7) relative, DCOR (a ratio of
# sums) measured to <= 1e-6 on all cases below; 2e-5 leaves a margin and still fails on any loss of
# more than ~2 digits to cancellation (the offset bug gave an error of 1.0). float64: measured
# <= 1e-11, tested at 1e-10.

TOL = {torch.float32: 2e-5, torch.float64: 1e-10}


def _issue_case(c, dtype=torch.float32, n=64):
    """The issue's example: 64 MNIST-sized inputs, a 3136-wide activation with a common offset c.
    Made in float32 (as the issue did), then converted: the float64 case holds the same numbers."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 784, generator=g)
    w = torch.randn(784, 3136, generator=g) / 28
    return x.to(dtype), (c + 0.1 * torch.tanh(x @ w)).to(dtype)


@functools.lru_cache(maxsize=None)
def _issue_reference(c):
    """(package DCOR, package bias-corrected dCor^2, float64 broadcast-formula gradient wrt z): the
    same numbers for both dtypes, so computed once per c."""
    x, z = _issue_case(c, torch.float64)
    ref, ref_u = _pkg(x, z)
    z64 = z.clone().requires_grad_(True)
    (rgz,) = torch.autograd.grad(_broadcast_dcor(x, z64), (z64,))
    return ref, ref_u, rgz


def _pkg(x, z):
    xn, zn = x.detach().double().numpy(), z.detach().double().numpy()
    return float(dcor_ref.distance_correlation(xn, zn)), float(dcor_ref.u_distance_correlation_sqr(xn, zn))


def _broadcast_distances(a):
    """||a_i - a_j|| from broadcast differences (no Gram form); 0 (and zero gradient) on the diagonal."""
    d2 = ((a[:, None] - a[None]) ** 2).sum(-1)
    eye = torch.eye(a.shape[0], dtype=torch.bool)
    return torch.where(eye, torch.zeros_like(d2), torch.sqrt(torch.where(eye, torch.ones_like(d2), d2)))


def _broadcast_dcor(x, z):
    """The paper's DCOR by the textbook formula: double-centred broadcast distance matrices."""

    def centred(d):
        return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()

    a, b = centred(_broadcast_distances(x)), centred(_broadcast_distances(z))
    return torch.sqrt((a * b).mean() / torch.sqrt((a * a).mean() * (b * b).mean()))


def _cosine(p, q):
    p, q = p.double().flatten(), q.double().flatten()
    return float(p @ q / (p.norm() * q.norm()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("c", [0.0, 1.0, 3.0, 10.0, 30.0, 1e3])
def test_issue_case_large_common_offset(c, dtype):
    """Z = c + 0.1 tanh(X W): the distances do not depend on c. Before the columns were centred, the
    Gram form cancelled and the round-off mask zeroed every distance for c >= 10 (DCOR exactly 0,
    zero gradient, in float32)."""
    x, z = _issue_case(c, dtype)
    ref, ref_u, rgz = _issue_reference(c)
    assert ref == pytest.approx(0.998616, abs=1e-6)  # the package's value for every c
    zr = z.clone().requires_grad_(True)
    value = distance_correlation(x, zr)
    (gz,) = torch.autograd.grad(value, (zr,))
    assert float(value.detach()) == pytest.approx(ref, abs=TOL[dtype])
    assert float(distance_correlation_unbiased_sqr(x, z)) == pytest.approx(ref_u, abs=TOL[dtype])
    for leak_dtype in (torch.float32, torch.float64):
        got = leakage(x, z, block_size=24, dtype=leak_dtype)  # 3 blocks, the last one short
        assert got["dcor"] == pytest.approx(ref, abs=TOL[leak_dtype])
        assert got["dcor_unbiased_sqr"] == pytest.approx(ref_u, abs=TOL[leak_dtype])
    # the gradient acts, and is the float64 textbook formula's at the same numbers
    assert float(gz.abs().max()) > 0
    scale = float(rgz.abs().max())
    if dtype == torch.float64:
        torch.testing.assert_close(gz, rgz, rtol=1e-9, atol=1e-12 * scale)
    else:  # as test_dcor_fast's float32 gradient test: measured 1e-4 of the largest entry, cosine 1 - 1e-9
        assert float((gz.double() - rgz).abs().max()) <= 1e-3 * scale
        assert _cosine(gz, rgz) > 1 - 1e-6
        assert float(gz.norm()) == pytest.approx(float(rgz.norm()), rel=1e-3)


def _adversarial(case):
    """(x, z) in float64; the tests round them to the dtype under test, the references use the rounded numbers."""
    x, z = _pair(64, 20, 30, 1)
    if case == "tiny":
        return 1e-6 * x, 1e-6 * z
    if case == "huge":
        return 1e6 * x, 1e6 * z
    if case == "offset_1e3":
        return x + 1e3, z - 1e3
    if case == "offset_per_column":  # a different large offset in every column
        g = torch.Generator().manual_seed(4)
        return x + 1e3 * torch.randn(x.shape[1], generator=g, dtype=x.dtype), z + 30.0
    if case in ("near_duplicates", "near_duplicates_offset"):  # 8 pairs of rows equal up to 1e-4 relative
        g = torch.Generator().manual_seed(5)
        for k in range(0, 16, 2):
            x[k + 1] = x[k] * (1 + 1e-4 * torch.randn(x.shape[1], generator=g, dtype=x.dtype))
            z[k + 1] = z[k] * (1 + 1e-4 * torch.randn(z.shape[1], generator=g, dtype=z.dtype))
        return (x, z) if case == "near_duplicates" else (x + 100.0, z + 100.0)
    if case == "single_column":  # one varying column, all others constant and large
        xs = torch.full((64, 50), 1e3, dtype=x.dtype)
        xs[:, 7] = x[:, 0]
        zs = torch.full((64, 40), -3e3, dtype=z.dtype)
        zs[:, 0] = z[:, 0] + x[:, 0]
        return xs, zs
    raise ValueError(case)


ADVERSARIAL = [
    "tiny",
    "huge",
    "offset_1e3",
    "offset_per_column",
    "near_duplicates",
    "near_duplicates_offset",
    "single_column",
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ADVERSARIAL)
def test_adversarial_values_match_dcor_package(case, dtype):
    x, z = (t.to(dtype) for t in _adversarial(case))
    ref, ref_u = _pkg(x, z)
    tol = TOL[dtype]
    if case.startswith("near_duplicates") and dtype == torch.float32:
        # float32 cannot resolve a squared distance below its round-off tolerance 64 eps (|y_i|^2 +
        # |y_j|^2), i.e. a distance below ~4e-3 of the (centred) row norms: these 8 pairs count as
        # coincident (distance 0 instead of ~1e-4 relative). Measured effect: 2.5e-6 (V), 1.5e-5 (U).
        tol = 1e-4
    assert float(distance_correlation(x, z)) == pytest.approx(ref, abs=tol)
    assert float(distance_correlation_unbiased_sqr(x, z)) == pytest.approx(ref_u, abs=tol)


@pytest.mark.parametrize("case", ADVERSARIAL)
def test_adversarial_gradients_match_broadcast_formula_float64(case):
    """float64 gradients (both inputs) against autograd through the broadcast formula. (In float32,
    pairs closer than float32 can resolve in the Gram form count as coincident, with zero gradient,
    so near-duplicate and one-dimensional data are compared on values only.)"""
    x, z = _adversarial(case)
    xr, zr = x.clone().requires_grad_(True), z.clone().requires_grad_(True)
    gx, gz = torch.autograd.grad(distance_correlation(xr, zr), (xr, zr))
    xb, zb = x.clone().requires_grad_(True), z.clone().requires_grad_(True)
    rgx, rgz = torch.autograd.grad(_broadcast_dcor(xb, zb), (xb, zb))
    for got, want in ((gx, rgx), (gz, rgz)):
        assert float(want.abs().max()) > 0
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9 * float(want.abs().max()))


@pytest.mark.parametrize("case", ["tiny", "huge", "offset_1e3", "offset_per_column"])
def test_adversarial_gradients_float32(case):
    x, z = _adversarial(case)
    x32, z32 = x.float(), z.float().requires_grad_(True)
    (gz,) = torch.autograd.grad(distance_correlation(x32, z32), (z32,))
    zb = z32.detach().double().requires_grad_(True)
    (rgz,) = torch.autograd.grad(_broadcast_dcor(x32.double(), zb), (zb,))
    assert float((gz.double() - rgz).abs().max()) <= 1e-3 * float(rgz.abs().max())
    assert _cosine(gz, rgz) > 1 - 1e-6


@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("offset", [0.0, 30.0, 1e3])
def test_leakage_blocked_with_offset_matches_dcor_package(offset, in_dtype):
    """n = 300 in blocks of 64 (the last one short), distances in float32 and in float64: every block
    is translated by the *whole set's* column mean (a per-block mean would change the distances
    between blocks)."""
    g = torch.Generator().manual_seed(7)
    x = torch.rand(300, 40, generator=g, dtype=torch.float64)
    z = offset + 0.1 * torch.tanh(x @ (torch.randn(40, 80, generator=g, dtype=torch.float64) / 3))
    z[:, :40] += 0.05 * torch.randn(300, 40, generator=g, dtype=torch.float64)
    x, z = (x + offset).to(in_dtype), z.to(in_dtype)
    ref, ref_u = _pkg(x, z)
    assert 0.2 < ref < 1.0 and ref_u > 0.05  # a case where the statistics are not degenerate
    for leak_dtype in (torch.float32, torch.float64):
        got = leakage(x, z, block_size=64, dtype=leak_dtype)
        assert got["dcor"] == pytest.approx(ref, abs=TOL[leak_dtype]), leak_dtype
        assert got["dcor_unbiased_sqr"] == pytest.approx(ref_u, abs=TOL[leak_dtype]), leak_dtype


# --- the peers' squared-distance statistic (nopeek.distance: squared) --------------------------


def test_squared_distance_statistic_matches_the_dcor_package():
    """``exponent=2`` in the dcor package is distance correlation with squared Euclidean distances."""
    import warnings

    from nopeek_repro.dcor import distance_correlation_squared_distances as squared

    rng = np.random.default_rng(3)
    for n, dx, dz in [(20, 5, 3), (64, 12, 30), (7, 1, 1)]:
        x = rng.normal(size=(n, dx))
        z = np.tanh(x[:, :1] * rng.normal(size=(1, dz))) + 0.3 * rng.normal(size=(n, dz))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # dcor warns that exponent 2 misses nonlinear dependence
            expected = dcor_ref.distance_correlation(x, z, exponent=2)
        assert float(squared(torch.from_numpy(x), torch.from_numpy(z))) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_squared_distance_statistic_misses_what_dcor_sees():
    """Why it is not the paper's DCOR: z = x^2 of a symmetric x is uncorrelated with x (RV ~ 0) but
    fully dependent on it (DCOR well above 0)."""
    from nopeek_repro.dcor import distance_correlation_squared_distances as squared

    x = torch.linspace(-1, 1, 201, dtype=torch.float64).reshape(-1, 1)
    z = x**2
    assert float(squared(x, z)) < 1e-6
    assert float(distance_correlation(x, z)) > 0.4


def test_squared_distance_statistic_gradient_and_degenerate_input():
    from nopeek_repro.dcor import distance_correlation_squared_distances as squared

    torch.manual_seed(0)
    x = torch.rand(9, 4, dtype=torch.float64)
    z = torch.rand(9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: squared(x, t), (z,))
    constant = torch.ones(9, 3, dtype=torch.float64, requires_grad=True)
    value = squared(x, constant)
    value.backward()
    assert float(value.detach()) == 0.0 and constant.grad is not None and float(constant.grad.abs().max()) == 0.0
