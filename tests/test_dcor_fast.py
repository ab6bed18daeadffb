"""The fast DCOR (custom autograd function, blocked element-wise work) and the blocked leakage.

The reference is the plain autograd formula (:func:`_reference_distance_correlation`: distance
matrices, sufficient statistics, autograd through everything), itself tested against the `dcor`
package in test_dcor.py.
"""

from __future__ import annotations

import pytest
import torch

import nopeek_repro.dcor as dcor_mod
from nopeek_repro.dcor import (
    _reference_distance_correlation,
    distance_correlation,
    distance_correlation_unbiased_sqr,
    leakage,
)


def _pair(n, dx, dz, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dx, generator=g, dtype=dtype)
    z = torch.tanh(x @ torch.randn(dx, dz, generator=g, dtype=dtype)) + 0.5 * torch.randn(
        n, dz, generator=g, dtype=dtype
    )
    return x, z


def _edge(case, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 5, generator=g, dtype=dtype)
    z = torch.rand(8, 4, generator=g, dtype=dtype)
    if case == "duplicate_rows":
        x[3], z[3] = x[1], z[1]
        x[6], z[6] = x[1], z[1]
    elif case == "duplicate_z_only":
        z[5] = z[2]
    elif case == "constant_z":
        z = torch.full((8, 4), 0.7, dtype=dtype)
    elif case == "n2":
        x, z = x[:2], z[:2]
    elif case == "n3":
        x, z = x[:3], z[:3]
    elif case == "all_equal":
        x, z = torch.ones(8, 5, dtype=dtype), torch.ones(8, 4, dtype=dtype)
    elif case == "zero_rows":
        z[0] = 0.0
        z[4] = 0.0
    elif case == "offset":  # rows sharing a large offset (the columns are centred before the Gram form)
        x, z = x + 1e3, z - 1e3
    elif case == "duplicate_rows_offset":
        x[3], z[3] = x[1], z[1]
        x, z = x + 1e3, z + 30.0
    return x, z


@pytest.fixture(params=[False, True], ids=["one_block", "many_blocks"])
def blocks(request, monkeypatch):
    """Run each test with the whole matrix as one block and with small blocks that do not divide n."""
    if request.param:
        monkeypatch.setattr(dcor_mod, "_BLOCK_ELEMS_CPU", 40)
    return request.param


def _grads(fn, x, z):
    x = x.clone().requires_grad_(True)
    z = z.clone().requires_grad_(True)
    value = fn(x, z)
    gx, gz = torch.autograd.grad(value, (x, z))
    return value.detach(), gx, gz


@pytest.mark.parametrize("n,dx,dz,seed", [(2, 3, 4, 0), (5, 3, 4, 1), (17, 8, 3, 2), (64, 30, 50, 3)])
def test_value_and_gradient_equal_the_reference_float64(n, dx, dz, seed, blocks):
    x, z = _pair(n, dx, dz, seed)
    v, gx, gz = _grads(distance_correlation, x, z)
    rv, rgx, rgz = _grads(_reference_distance_correlation, x, z)
    assert float(v) == pytest.approx(float(rv), abs=1e-12)
    torch.testing.assert_close(gz, rgz, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gx, rgx, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n,dx,dz,seed", [(17, 8, 3, 2), (64, 30, 50, 3), (128, 784, 512, 4)])
def test_value_and_gradient_equal_the_reference_float32(n, dx, dz, seed, blocks):
    x, z = _pair(n, dx, dz, seed, dtype=torch.float32)
    v, gx, gz = _grads(distance_correlation, x, z)
    assert v.dtype == gz.dtype == gx.dtype == torch.float32
    # float32 against the float64 truth: the fast path is at least as accurate as the reference's
    rv, rgx, rgz = _grads(_reference_distance_correlation, x.double(), z.double())
    assert float(v) == pytest.approx(float(rv), abs=2e-5)
    scale = float(rgz.abs().max())
    assert float((gz.double() - rgz).abs().max()) <= 1e-3 * scale
    assert float((gx.double() - rgx).abs().max()) <= 1e-3 * float(rgx.abs().max())


@pytest.mark.parametrize(
    "case", ["random", "duplicate_rows", "duplicate_z_only", "zero_rows", "n2", "n3", "offset", "duplicate_rows_offset"]
)
def test_gradcheck_custom_backward(case, blocks):
    x, z = _edge(case) if case != "random" else _pair(9, 4, 3, 5)
    x = x.clone().requires_grad_(True)
    z = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(distance_correlation, (x, z))
    assert torch.autograd.gradcheck(lambda t: distance_correlation(x.detach(), t), (z,))


@pytest.mark.parametrize(
    "case",
    [
        "duplicate_rows",
        "duplicate_z_only",
        "constant_z",
        "n2",
        "all_equal",
        "zero_rows",
        "offset",
        "duplicate_rows_offset",
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_edge_cases_finite_and_equal_to_the_reference(case, dtype, blocks):
    x, z = _edge(case, dtype)
    v, gx, gz = _grads(distance_correlation, x, z)
    rv, rgx, rgz = _grads(_reference_distance_correlation, x, z)
    assert torch.isfinite(v) and torch.isfinite(gx).all() and torch.isfinite(gz).all()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert float(v) == pytest.approx(float(rv), abs=tol)
    if case in ("constant_z", "all_equal"):
        assert v.item() == 0.0 and not gz.any() and not gx.any()
    if case == "n2":  # DCOR of two points is 1 whatever they are: the gradient is round-off
        assert float(gz.abs().max()) < 1e3 * torch.finfo(dtype).eps
    else:
        torch.testing.assert_close(gz, rgz, rtol=1e-4 if dtype == torch.float32 else 1e-9, atol=10 * tol)


def test_gradient_only_for_what_requires_it():
    x, z = _pair(20, 6, 5, 1)
    zr = z.clone().requires_grad_(True)
    d = distance_correlation(x, zr)
    (gz,) = torch.autograd.grad(d, (zr,))
    _, _, rgz = _grads(_reference_distance_correlation, x, z)
    torch.testing.assert_close(gz, rgz, rtol=1e-9, atol=1e-12)
    xr = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(distance_correlation(xr, z), (xr,))
    _, rgx, _ = _grads(_reference_distance_correlation, x, z)
    torch.testing.assert_close(gx, rgx, rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        assert float(distance_correlation(x, zr)) == float(d)


def test_scaled_loss_and_reshaped_activations():
    """What the client does: alpha * DCOR(x, z) with z an image-shaped activation."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(12, 1, 6, 6, generator=g, dtype=torch.float64)
    z = torch.randn(12, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    (gz,) = torch.autograd.grad(30.0 * distance_correlation(x, z), (z,))
    (rgz,) = torch.autograd.grad(30.0 * _reference_distance_correlation(x, z), (z,))
    assert gz.shape == z.shape
    torch.testing.assert_close(gz, rgz, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deterministic(dtype, blocks):
    x, z = _pair(300, 40, 70, 6, dtype=dtype)
    first = _grads(distance_correlation, x, z)
    second = _grads(distance_correlation, x, z)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_block_sizes_agree(monkeypatch):
    x, z = _pair(61, 7, 9, 8)
    ref = _grads(distance_correlation, x, z)
    for elems in (1, 61 * 2, 61 * 7, 61 * 60, 10**9):
        monkeypatch.setattr(dcor_mod, "_BLOCK_ELEMS_CPU", elems)
        got = _grads(distance_correlation, x, z)
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("block", [1, 5, 32, 149, 150, 151, 4096])
def test_blocked_leakage_from_float32_inputs_equals_unblocked_float64(block):
    """float32 inputs: blocks are converted to float64 one pair at a time (the buffers path)."""
    x, z = _pair(150, 30, 50, 11, dtype=torch.float32)
    x[40], z[40] = x[3], z[3]  # a duplicate across blocks
    got = leakage(x, z, block_size=block)
    assert got["dcor"] == pytest.approx(float(distance_correlation(x.double(), z.double())), abs=1e-12)
    assert got["dcor_unbiased_sqr"] == pytest.approx(
        float(distance_correlation_unbiased_sqr(x.double(), z.double())), abs=1e-12
    )


def test_blocked_leakage_independent_and_constant():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(200, 50, generator=g)
    z = torch.randn(200, 400, generator=g)
    got = leakage(x, z, block_size=64)
    assert got["dcor"] > 0.5 and abs(got["dcor_unbiased_sqr"]) < 0.05  # the V-statistic's bias
    const = leakage(x, torch.full((200, 3), 2.5), block_size=64)
    assert const == {"dcor": 0.0, "dcor_unbiased_sqr": 0.0}


@pytest.mark.parametrize(
    "x,z,message",
    [
        (torch.rand(3, 2), torch.rand(3, 2), "at least 4 samples"),
        (torch.rand(6, 3), torch.rand(5, 3), "6 samples but z has 5"),
        (torch.tensor([[0.0], [1.0], [2.0], [float("nan")], [4.0]]), torch.rand(5, 1), "x contains NaN or inf"),
        (torch.rand(5, 2), torch.tensor([[0.0], [1.0], [float("-inf")], [3.0], [4.0]]), "z contains NaN or inf"),
    ],
)
@pytest.mark.parametrize("block", [2, 1024])
def test_leakage_bad_input(x, z, message, block):
    with pytest.raises(ValueError, match=message):
        leakage(x, z, block_size=block)


def test_leakage_bad_block_size():
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        leakage(torch.rand(5, 2), torch.rand(5, 2), block_size=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_finite_inputs_raise_with_grad(dtype):
    x = torch.rand(6, 3, dtype=dtype)
    z = torch.rand(6, 2, dtype=dtype, requires_grad=True)
    bad = z.detach().clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="z contains NaN or inf"):
        distance_correlation(x, bad.requires_grad_(True))
    xb = x.clone()
    xb[0, 0] = float("inf")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        distance_correlation(xb, z)


def test_overflowing_squared_norms_raise():
    x = torch.full((4, 3), 1e30)
    x[1::2] = -1e30  # finite, but |x_i - mean|^2 overflows float32
    with pytest.raises(ValueError, match="x is too large"):
        distance_correlation(x, torch.rand(4, 2))
    with pytest.raises(ValueError, match="x is too large"):
        leakage(x, torch.rand(4, 2), block_size=2, dtype=torch.float32)


def test_huge_constant_offset_is_not_an_overflow():
    """Rows that share an offset whose square overflows are fine (the columns are centred first):
    a constant 1e30 has only zero distances (DCOR 0, like any constant); 1e18 * data + 3e19 (ulp
    there ~2e12, 2e-6 of the spread) has the DCOR of 1e18 * data, though |row|^2 ~ 3e39 overflows."""
    x = torch.full((4, 3), 1e30)
    assert float(distance_correlation(x, torch.rand(4, 2))) == 0.0
    x, z = _pair(20, 3, 2, 0, dtype=torch.float32)
    big = 1e18 * x
    want = float(distance_correlation(big, z))
    assert float(distance_correlation(big + 3e19, z)) == pytest.approx(want, abs=1e-4)
    assert leakage(big + 3e19, z, block_size=8, dtype=torch.float32)["dcor"] == pytest.approx(want, abs=1e-4)
