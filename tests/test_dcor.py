"""Distance correlation: agreement with the `dcor` package, known cases, edge cases, blocking."""

from __future__ import annotations

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
    z = torch.tanh(x @ w) + 0.5 * torch.randn(n, dz, generator=g, dtype=torch.float64) if dependent else \
        torch.randn(n, dz, generator=g, dtype=torch.float64)
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
