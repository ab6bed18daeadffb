"""The split protocol: only tensors cross, and the parties' updates equal the NoPeek objective's."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nopeek_repro.dcor import distance_correlation
from nopeek_repro.models import build_split_cnn
from nopeek_repro.split import Client, Server


def _parties(alpha_dcor=0.0, noise=0.0, alpha_task=1.0):
    torch.manual_seed(0)
    c_net, s_net = build_split_cnn(1)
    return Client(c_net, lr=1e-3, alpha_dcor=alpha_dcor, noise=noise), Server(s_net, lr=1e-3, alpha_task=alpha_task)


def test_only_detached_tensors_cross():
    client, server = _parties()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    z = client.forward(x)
    assert isinstance(z, torch.Tensor) and z.grad_fn is None and not z.requires_grad
    dz = server.train_step(z, y)
    assert isinstance(dz, torch.Tensor) and dz.grad_fn is None and dz.shape == z.shape
    client.backward(dz)


@pytest.mark.parametrize("alpha_dcor,alpha_task", [(0.0, 1.0), (3.0, 1.0), (10.0, 0.1)])
def test_client_gradient_equals_joint_nopeek_objective(alpha_dcor, alpha_task):
    client, server = _parties(alpha_dcor=alpha_dcor, alpha_task=alpha_task)
    c_ref, s_ref = copy.deepcopy(client.net), copy.deepcopy(server.net)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    # reference: the whole network and the whole objective in one graph
    z = c_ref(x)
    loss = alpha_dcor * distance_correlation(x.flatten(1), z) + alpha_task * F.cross_entropy(s_ref(z), y)
    loss.backward()
    # split protocol, with the optimizer step replaced by a no-op to read the gradients
    client.optimizer.step = lambda: None
    server.optimizer.step = lambda: None
    client.backward(server.train_step(client.forward(x), y))
    for p, q in zip(client.net.parameters(), c_ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
    for p, q in zip(server.net.parameters(), s_ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_noise_is_uniform_and_bounded():
    client, _ = _parties(noise=0.5)
    x = torch.rand(32, 1, 28, 28)
    diff = client.activations(x) - client.clean_activations(x)
    assert diff.abs().max() <= 0.5 and diff.abs().max() > 0.4
    assert abs(float(diff.mean())) < 0.02


def test_backward_before_forward_and_bad_weights():
    client, _ = _parties()
    with pytest.raises(RuntimeError, match="before Client.forward"):
        client.backward(torch.zeros(1))
    with pytest.raises(ValueError, match="alpha_dcor must be >= 0"):
        Client(torch.nn.Identity(), lr=1.0, alpha_dcor=-1)
    with pytest.raises(ValueError, match="alpha_task must be > 0"):
        Server(torch.nn.Linear(2, 2), lr=1.0, alpha_task=0)


def test_diagnosed_step_measures_both_gradients_and_changes_nothing():
    """The gradient norms of the two terms, measured apart, and an update bitwise equal to an undiagnosed one."""

    def parties():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        return Client(net, lr=1e-2, alpha_dcor=3.0), Server(nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 3)), 1e-2)

    x, y = torch.rand(8, 1, 6, 6), torch.arange(8) % 3
    (c1, s1), (c2, s2) = parties(), parties()
    plain = c1.backward(s1.train_step(c1.forward(x), y))
    probed = c2.backward(s2.train_step(c2.forward(x), y), diagnose=True)
    assert probed.dcor == plain.dcor and math.isnan(plain.grad_task)
    for p, q in zip(c1.net.parameters(), c2.net.parameters()):
        assert torch.equal(p, q)

    # the norms, by hand: each term's gradient on the client's parameters, on the same weights
    torch.manual_seed(0)
    client, server = parties()
    z_sent = client.forward(x)
    grad_z = server.train_step(z_sent, y)
    z = client.net(x)
    task = torch.autograd.grad(z, list(client.net.parameters()), grad_z, retain_graph=True)
    dcor = torch.autograd.grad(3.0 * distance_correlation(x.reshape(8, -1), z), list(client.net.parameters()))
    norm = lambda gs: float(torch.sqrt(sum((g.double() ** 2).sum() for g in gs)))  # noqa: E731
    assert probed.grad_task == pytest.approx(norm(task), rel=1e-6)
    assert probed.grad_dcor == pytest.approx(norm(dcor), rel=1e-6)


def test_client_trains_with_the_squared_statistic_when_asked():
    from nopeek_repro.dcor import distance_correlation_squared_distances

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
    client = Client(net, lr=1e-2, alpha_dcor=3.0, distance="squared")
    x = torch.rand(8, 1, 6, 6)
    z = client.forward(x)
    expected = float(distance_correlation_squared_distances(x.reshape(8, -1), z))
    step = client.backward(torch.zeros_like(z))
    assert step.dcor == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="distance must be one of euclidean, squared, got 'cosine'"):
        Client(net, lr=1e-2, distance="cosine")


def test_client_optimiser_is_adam_or_sgd_with_momentum():
    net = nn.Sequential(nn.Conv2d(1, 2, 3))
    sgd = Client(net, lr=0.05, optimizer="sgd").optimizer
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    assert sgd.param_groups[0]["lr"] == 0.05
    assert isinstance(Client(net, lr=1e-3).optimizer, torch.optim.Adam)
    with pytest.raises(ValueError, match="optimizer must be one of adam, sgd, got 'rmsprop'"):
        Client(net, lr=1e-3, optimizer="rmsprop")
