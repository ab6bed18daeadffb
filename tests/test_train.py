"""Training: determinism on the CPU, what is recorded, save/load."""

from __future__ import annotations

import pytest
import torch

from nopeek_repro import config, train
from nopeek_repro.defences import RunSpec

PARAMS = config.TrainParams(seeds=[0], epochs=2, batch_size=32, lr=1e-3, threads=2)


@pytest.mark.parametrize("spec", [RunSpec(), RunSpec("nopeek", alpha_dcor=5.0), RunSpec("noise", noise=1.0)])
def test_same_seed_same_numbers(tiny_split, spec):
    a = train.train(spec, tiny_split, PARAMS, cut_layer=1, seed=3, progress=False)
    b = train.train(spec, tiny_split, PARAMS, cut_layer=1, seed=3, progress=False)
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


def test_the_client_can_minimise_dcor_alone(tiny_split):
    """The DCOR gradient is usable: the client alone (zero task gradient) drives DCOR(X, Z) down."""
    torch.manual_seed(0)
    client = train.make_parties(RunSpec("nopeek", alpha_dcor=1.0), 1, tiny_split, 1e-2, 1.0, seed=0)[0]
    x = tiny_split.x_train[:64]
    first = last = None
    for _ in range(100):
        z = client.forward(x)
        step = client.backward(torch.zeros_like(z))
        first = step.dcor if first is None else first
        last = step.dcor
    assert first > 0.95 and last < 0.5


def test_evaluate_and_save_load_round_trip(tmp_path, tiny_split):
    t = train.train(RunSpec("noise", noise=0.5), tiny_split, PARAMS, cut_layer=2, seed=0, progress=False)
    ev = train.evaluate(t.client, t.server, tiny_split)
    assert set(ev) == {"test_accuracy", "leakage_dcor", "leakage_dcor_unbiased"}
    assert 0 <= ev["test_accuracy"] <= 1 and 0 <= ev["leakage_dcor"] <= 1
    train.save(t, tmp_path / "m")
    back = train.load(tmp_path / "m", tiny_split, PARAMS)
    assert back.spec == t.spec and back.cut_layer == 2 and back.seed == 0
    x = tiny_split.x_test
    torch.testing.assert_close(back.client.clean_activations(x), t.client.clean_activations(x))
    with pytest.raises(FileNotFoundError, match="no trained model here"):
        train.load(tmp_path / "nothing", tiny_split, PARAMS)
