"""Training: determinism on the CPU, what is recorded, save/load."""

from __future__ import annotations

import copy

import dcor as dcor_ref
import pytest
import torch

from nopeek_repro import config, data, floors, runtime, train
from nopeek_repro.config import ModelParams
from nopeek_repro.dcor import distance_correlation
from nopeek_repro.defences import RunSpec
from nopeek_repro.metrics import accuracy

PARAMS = config.TrainParams(seeds=[0], epochs=2, batch_size=32, lr=1e-3, threads=2)


@pytest.mark.parametrize("spec", [RunSpec(), RunSpec("nopeek", alpha_dcor=5.0), RunSpec("noise", noise=1.0)])
def test_same_seed_same_numbers(tiny_split, spec):
    a = train.train(spec, tiny_split, PARAMS, ModelParams(cut_layer=1), seed=3, progress=False)
    b = train.train(spec, tiny_split, PARAMS, ModelParams(cut_layer=1), seed=3, progress=False)
    assert a.history.equals(b.history)
    for p, q in zip(a.client.net.parameters(), b.client.net.parameters()):
        assert torch.equal(p, q)
    assert list(a.history.columns) == [
        "epoch",
        "train_ce",
        "train_dcor",
        "test_accuracy",
        "test_dcor",
        "dead_channels",
        "z_std",
        "grad_ratio",
    ]
    assert a.history.epoch.tolist() == [1, 2]
    assert (a.history.grad_ratio > 0).all() == (spec.defence == "nopeek")  # 0 without a DCOR term


def test_cut_statistics():
    z = torch.zeros(4, 3, 2, 2)
    z[:, 0] = torch.arange(4.0).reshape(4, 1, 1)  # channel 0 varies over samples; channel 1 stays 0
    z[0, 2, 0, 0] = 1.0  # channel 2 is alive in one sample at one position
    stats = train.cut_statistics(z)
    assert stats["dead_channels"] == pytest.approx(1 / 3)
    per_unit = z.reshape(4, -1).double().std(dim=0, unbiased=False)  # population std over the samples
    assert stats["z_std"] == pytest.approx(float(per_unit.mean()))


def test_different_seeds_differ(tiny_split):
    a = train.train(RunSpec(), tiny_split, PARAMS, ModelParams(cut_layer=1), seed=0, progress=False)
    b = train.train(RunSpec(), tiny_split, PARAMS, ModelParams(cut_layer=1), seed=1, progress=False)
    assert not a.history.equals(b.history)


def test_nopeek_lowers_dcor_relative_to_the_baseline(tiny_split):
    """Same seed, same batches: with the DCOR term the training DCOR ends lower than without it."""
    p = config.TrainParams(seeds=[0], epochs=3, batch_size=32, lr=1e-3)
    for seed in (0, 1):
        base = train.train(RunSpec(), tiny_split, p, ModelParams(cut_layer=1), seed=seed, progress=False)
        nop = train.train(
            RunSpec("nopeek", alpha_dcor=100.0), tiny_split, p, ModelParams(cut_layer=1), seed=seed, progress=False
        )
        assert nop.history.train_dcor.iloc[-1] < base.history.train_dcor.iloc[-1]
        assert nop.history.test_dcor.iloc[-1] < base.history.test_dcor.iloc[-1]


def test_the_dcor_gradient_reaches_the_client_as_a_descent_direction(tiny_split):
    """Through the protocol (zero task gradient), the client's parameter update for DCOR alone is a
    descent direction: a small plain-gradient step lowers DCOR(X, Z) by what the gradient predicts
    (first order: eta * |grad|^2), in float64."""
    torch.manual_seed(0)
    client = train.make_parties(
        RunSpec("nopeek", alpha_dcor=1.0), ModelParams(cut_layer=1), tiny_split, 1e-3, 1.0, seed=0
    )[0]
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
    eta = 1e-3 / squared**0.5  # a step of length 1e-3 in parameter space
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= eta * g
        after = float(distance_correlation(x.flatten(1), client.net(x)))
    assert 0 < start < 1
    assert after < value
    assert (value - after) == pytest.approx(eta * squared, rel=0.05)


FLOOR_KEYS = {
    "batch_dcor",
    "batch_dcor_shuffled",
    "leakage_dcor_shuffled",
    "floor_label_dcor",
    "floor_label_batch_dcor",
}


def test_evaluate_and_save_load_round_trip(tmp_path, tiny_split):
    t = train.train(RunSpec("noise", noise=0.5), tiny_split, PARAMS, ModelParams(cut_layer=2), seed=0, progress=False)
    assert t.batch_size == PARAMS.batch_size
    ev = train.evaluate(t.client, t.server, tiny_split, batch_size=t.batch_size)
    # no validation part in this split: no val_* numbers
    assert set(ev) == {"test_accuracy", "leakage_dcor", "leakage_dcor_unbiased"} | FLOOR_KEYS
    assert 0 <= ev["test_accuracy"] <= 1
    assert all(0 <= ev[k] <= 1 for k in {"leakage_dcor"} | FLOOR_KEYS)
    assert ev["leakage_dcor_unbiased"] <= 1  # bias-corrected: may dip below 0
    assert set(train.evaluate(t.client, t.server, tiny_split, dtype=torch.float32, full=False)) == {
        "test_accuracy",
        "leakage_dcor",
    }  # what the per-epoch history uses
    train.save(t, tmp_path / "m")
    back = train.load(tmp_path / "m", tiny_split, PARAMS)
    assert back.spec == t.spec and back.model.cut_layer == 2 and back.model.arch == "cnn" and back.seed == 0
    assert back.batch_size == PARAMS.batch_size
    x = tiny_split.x_test
    torch.testing.assert_close(back.client.clean_activations(x), t.client.clean_activations(x))
    with pytest.raises(FileNotFoundError, match="no trained model here"):
        train.load(tmp_path / "nothing", tiny_split, PARAMS)


def test_evaluate_on_a_split_with_validation_against_direct_computations(tiny_split):
    """Every number evaluate() gives, recomputed here from the activations with the plain estimators."""
    split = data.with_validation(copy.deepcopy(tiny_split), 0.25, seed=0)  # it moves rows: never touch the fixture
    assert (len(split.x_train), len(split.x_val), len(split.x_test)) == (144, 48, 64)
    t = train.train(
        RunSpec(), split, PARAMS, ModelParams(cut_layer=1), seed=0, progress=False
    )  # no noise: activations are repeatable
    n_test = len(split.x_test)
    ev = train.evaluate(t.client, t.server, split, batch_size=n_test)
    assert (
        set(ev)
        == {"test_accuracy", "leakage_dcor", "leakage_dcor_unbiased", "val_accuracy", "val_leakage_dcor"} | FLOOR_KEYS
    )
    flat = lambda x: x.reshape(len(x), -1).double()  # noqa: E731
    z_test, z_val = t.client.activations(split.x_test), t.client.activations(split.x_val)
    assert ev["test_accuracy"] == accuracy(t.server.predict(z_test), split.y_test)
    assert ev["val_accuracy"] == accuracy(t.server.predict(z_val), split.y_val)
    ref = lambda x, z: dcor_ref.distance_correlation(flat(x).numpy(), flat(z).numpy())  # noqa: E731
    assert ev["leakage_dcor"] == pytest.approx(ref(split.x_test, z_test), abs=1e-9)
    assert ev["val_leakage_dcor"] == pytest.approx(ref(split.x_val, z_val), abs=1e-9)
    assert ev["leakage_dcor_unbiased"] == pytest.approx(
        dcor_ref.u_distance_correlation_sqr(flat(split.x_test).numpy(), flat(z_test).numpy()), abs=1e-9
    )
    # floors: the same Z in a shuffled pairing, and a Z that is the one-hot label only
    assert ev["leakage_dcor_shuffled"] == pytest.approx(ref(split.x_test, floors.shuffled(z_test)), abs=1e-9)
    onehot = torch.nn.functional.one_hot(split.y_test.long(), split.n_classes)
    assert ev["floor_label_dcor"] == pytest.approx(ref(split.x_test, onehot), abs=1e-9)
    # one batch of the whole test set: the per-batch numbers are the whole-set ones (DCOR ignores row order)
    assert ev["batch_dcor"] == pytest.approx(ev["leakage_dcor"], abs=1e-9)
    assert ev["batch_dcor_shuffled"] == pytest.approx(ev["leakage_dcor_shuffled"], abs=1e-9)
    assert ev["floor_label_batch_dcor"] == pytest.approx(ev["floor_label_dcor"], abs=1e-9)
    # smaller batches: a different n, a different number; the whole-set ones do not move
    small = train.evaluate(t.client, t.server, split, batch_size=16)
    assert small["batch_dcor"] != pytest.approx(ev["batch_dcor"], abs=1e-6)
    assert small["floor_label_batch_dcor"] > ev["floor_label_dcor"]  # the V-statistic's floor rises as n falls
    for k in (
        "test_accuracy",
        "leakage_dcor",
        "val_accuracy",
        "val_leakage_dcor",
        "floor_label_dcor",
        "leakage_dcor_shuffled",
    ):
        assert small[k] == pytest.approx(ev[k], abs=1e-12), k


def test_step_decay_lowers_the_learning_rate(tiny_split):
    p = config.TrainParams(seeds=[0], epochs=2, batch_size=64, lr=1e-3, lr_milestones=[1], lr_gamma=0.1)
    t = train.train(RunSpec(), tiny_split, p, ModelParams(cut_layer=1), seed=0, progress=False)
    assert t.client.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert t.server.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(
        config.ParamsError, match=r"train.device = 'cuda': no CUDA device is available here; allowed: cpu, or auto"
    ):
        runtime.resolve_device("cuda")
    assert runtime.resolve_device("auto") == torch.device("cpu")


def test_estimate_is_positive(tiny_split):
    p = config.TrainParams(seeds=[0, 1], epochs=2, batch_size=32)
    one = train.estimate_seconds(tiny_split, p, config.ModelParams(), n_models=1)
    assert one > 0


def test_alpha_ramp_rises_linearly_then_holds(tiny_split, monkeypatch):
    """alpha_ramp = 1: the DCOR weight of step t is alpha * t / (steps per epoch) over the first epoch."""
    seen = []
    original = train.Client.backward

    def spy(self, grad_z, diagnose=False):
        seen.append(self.alpha_dcor)
        return original(self, grad_z, diagnose)

    monkeypatch.setattr(train.Client, "backward", spy)
    p = config.TrainParams(seeds=[0], epochs=2, batch_size=64, alpha_ramp=1.0)
    train.train(RunSpec("nopeek", alpha_dcor=6.0), tiny_split, p, ModelParams(), seed=0, progress=False)
    per_epoch = runtime.n_batches(len(tiny_split.x_train), 64)
    assert seen == pytest.approx([6.0 * t / per_epoch for t in range(1, per_epoch + 1)] + [6.0] * per_epoch)


def test_client_optimiser_and_learning_rate_are_the_clients_own(tiny_split):
    p = config.TrainParams(seeds=[0], epochs=1, batch_size=64, client_optimizer="sgd", client_lr=0.05)
    t = train.train(RunSpec(), tiny_split, p, ModelParams(), seed=0, progress=False)
    assert isinstance(t.client.optimizer, torch.optim.SGD) and t.client.optimizer.param_groups[0]["lr"] == 0.05
    assert isinstance(t.server.optimizer, torch.optim.Adam) and t.server.optimizer.param_groups[0]["lr"] == 1e-3


def test_what_sits_at_the_cut_is_saved_and_reloaded(tiny_split, tmp_path):
    model = ModelParams(at_cut="batchnorm")
    t = train.train(RunSpec(), tiny_split, PARAMS, model, seed=0, progress=False)
    train.save(t, tmp_path / "m")
    back = train.load(tmp_path / "m", tiny_split, PARAMS)
    assert back.model.at_cut == "batchnorm"
    assert torch.equal(back.client.activations(tiny_split.x_test), t.client.activations(tiny_split.x_test))


@pytest.mark.parametrize(
    "spec,names",
    [(RunSpec(), "train.lr (now 1e+06)"), (RunSpec("nopeek", alpha_dcor=10), "nopeek.alpha_dcor (this run: 10)")],
)
def test_divergence_stops_training_and_names_the_settings(tiny_split, spec, names):
    """lr 1e6: the cross-entropy explodes within a few batches; training stops with one message, no model."""
    params = config.TrainParams(seeds=[0], epochs=1, batch_size=32, lr=1e6)
    with pytest.raises(train.TrainingDiverged) as info:
        train.train(spec, tiny_split, params, ModelParams(), 0, progress=False)
    message = str(info.value)
    assert f"{spec.name} seed 0 diverged at epoch 1" in message and names in message
    assert "no result of this run is kept" in message
    assert isinstance(info.value, config.ParamsError)  # the stage runner reports it as bad settings (exit 2)
