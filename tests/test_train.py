"""Training: determinism on the CPU, what is recorded, save/load."""

from __future__ import annotations

import pytest
import torch

from nopeek_repro import config, train
from nopeek_repro.dcor import distance_correlation
from nopeek_repro.defences import RunSpec

PARAMS = config.TrainParams(seeds=[0], epochs=2, batch_size=32, lr=1e-3, threads=2)


@pytest.mark.parametrize("spec", [RunSpec(), RunSpec("nopeek", alpha_dcor=5.0), RunSpec("noise", noise=1.0)])
def test_same_seed_same_numbers(tiny_split, spec):
    a = train.train(spec, tiny_split, PARAMS, 1, seed=3, progress=False)
    b = train.train(spec, tiny_split, PARAMS, 1, seed=3, progress=False)
    assert a.history.equals(b.history)
    for p, q in zip(a.client.net.parameters(), b.client.net.parameters()):
        assert torch.equal(p, q)
    assert list(a.history.columns) == ["epoch", "train_ce", "train_dcor", "test_accuracy", "test_dcor"]
    assert a.history.epoch.tolist() == [1, 2]


def test_different_seeds_differ(tiny_split):
    a = train.train(RunSpec(), tiny_split, PARAMS, 1, seed=0, progress=False)
    b = train.train(RunSpec(), tiny_split, PARAMS, 1, seed=1, progress=False)
    assert not a.history.equals(b.history)


def test_nopeek_lowers_dcor_relative_to_the_baseline(tiny_split):
    """Same seed, same batches: with the DCOR term the training DCOR ends lower than without it."""
    p = config.TrainParams(seeds=[0], epochs=3, batch_size=32, lr=1e-3)
    for seed in (0, 1):
        base = train.train(RunSpec(), tiny_split, p, 1, seed=seed, progress=False)
        nop = train.train(RunSpec("nopeek", alpha_dcor=100.0), tiny_split, p, 1, seed=seed, progress=False)
        assert nop.history.train_dcor.iloc[-1] < base.history.train_dcor.iloc[-1]
        assert nop.history.test_dcor.iloc[-1] < base.history.test_dcor.iloc[-1]


def test_the_dcor_gradient_reaches_the_client_as_a_descent_direction(tiny_split):
    """Through the protocol (zero task gradient), the client's parameter update for DCOR alone is a
    descent direction: a small plain-gradient step lowers DCOR(X, Z) by what the gradient predicts
    (first order: eta * |grad|^2), in float64."""
    torch.manual_seed(0)
    client = train.make_parties(RunSpec("nopeek", alpha_dcor=1.0), 1, tiny_split, 1e-3, 1.0, seed=0)[0]
    client.net.double()
    x = tiny_split.x_train[:64].double()
    z = client.forward(x)
    start = client.backward(torch.zeros_like(z)).dcor  # Adam's first step moves the weights; measure from here
    params = list(client.net.parameters())
    client.optimizer.zero_grad(set_to_none=True)
    z = client.net(x)
    loss = distance_correlation(x.flatten(1), z)
    loss.backward()
    value = float(loss.detach())
    grads = [p.grad.clone() for p in params]
    squared = sum(float((g * g).sum()) for g in grads)
    eta = 1e-3 / squared ** 0.5  # a step of length 1e-3 in parameter space
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= eta * g
        after = float(distance_correlation(x.flatten(1), client.net(x)))
    assert 0 < start < 1
    assert after < value
    assert (value - after) == pytest.approx(eta * squared, rel=0.05)


def test_evaluate_and_save_load_round_trip(tmp_path, tiny_split):
    t = train.train(RunSpec("noise", noise=0.5), tiny_split, PARAMS, 2, seed=0, progress=False)
    ev = train.evaluate(t.client, t.server, tiny_split)
    assert set(ev) == {"test_accuracy", "leakage_dcor", "leakage_dcor_unbiased"}
    assert 0 <= ev["test_accuracy"] <= 1 and 0 <= ev["leakage_dcor"] <= 1
    train.save(t, tmp_path / "m")
    back = train.load(tmp_path / "m", tiny_split, PARAMS)
    assert back.spec == t.spec and back.model.cut_layer == 2 and back.model.arch == "cnn" and back.seed == 0
    x = tiny_split.x_test
    torch.testing.assert_close(back.client.clean_activations(x), t.client.clean_activations(x))
    with pytest.raises(FileNotFoundError, match="no trained model here"):
        train.load(tmp_path / "nothing", tiny_split, PARAMS)


def test_step_decay_lowers_the_learning_rate(tiny_split):
    p = config.TrainParams(seeds=[0], epochs=2, batch_size=64, lr=1e-3, lr_milestones=[1], lr_gamma=0.1)
    t = train.train(RunSpec(), tiny_split, p, 1, seed=0, progress=False)
    assert t.client.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert t.server.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(config.ParamsError, match=r"train.device = 'cuda': no CUDA device is available here; allowed: cpu, or auto"):
        train.resolve_device("cuda")
    assert train.resolve_device("auto") == torch.device("cpu")


def test_estimate_is_positive(tiny_split):
    p = config.TrainParams(seeds=[0, 1], epochs=2, batch_size=32)
    one = train.estimate_seconds(tiny_split, p, config.ModelParams(), n_models=1)
    assert one > 0
