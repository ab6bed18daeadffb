"""The attacks: leaked pairs come from training data only, the strongest of three is chosen on a
held-out slice of them, every decoder trains until it stops improving, scores are on held-out images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nopeek_repro import attacks, config, train
from nopeek_repro.defences import RunSpec

FAST = dict(batch_size=32, max_steps=60, eval_every=10, patience=2)


def _trained(split, spec=RunSpec()):
    return train.train(
        spec, split, config.TrainParams(seeds=[0], epochs=1, batch_size=32), config.ModelParams(), 0, progress=False
    )


def test_leak_indices():
    idx = attacks.leak_indices(1000, 0.25, seed=0)
    assert len(idx) == 250 and len(set(idx)) == 250 and idx.min() >= 0 and idx.max() < 1000
    assert (idx == attacks.leak_indices(1000, 0.25, seed=0)).all()
    assert len(attacks.leak_indices(1000, 1.0, seed=0)) == 1000
    assert len(attacks.leak_indices(1000, 0.001, seed=0)) == attacks.MIN_LEAKED  # never fewer than an attack needs
    with pytest.raises(ValueError, match=r"leak_fraction must be in \(0, 1\]"):
        attacks.leak_indices(10, 0.0, seed=0)


def test_holdout_split_is_disjoint_and_seeded():
    fit, hold = attacks.holdout_split(100, 0.1, seed=3)
    assert len(hold) == 10 and len(fit) == 90 and not set(fit) & set(hold)
    assert (hold == attacks.holdout_split(100, 0.1, seed=3)[1]).all()
    fit, hold = attacks.holdout_split(3, 0.5, seed=0)
    assert len(fit) == 2 and len(hold) == 1


def test_ridge_recovers_a_linear_map_and_picks_small_regularisation():
    """On exactly linear data ridge must find the map; on pure noise it must shrink to the mean."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 40, generator=g)
    w = torch.randn(40, 16, generator=g) * 0.02
    x = (0.5 + z @ w).reshape(300, 1, 4, 4)
    model, r, _ = attacks.fit_ridge(z[:250], x[:250], z[250:], x[250:], [1e-8, 1e-4, 1.0, 1e4])
    assert r <= 1e-4
    assert float((model(z[250:]) - x[250:]).abs().max()) < 1e-5
    noise_x = torch.rand(300, 1, 4, 4, generator=g)
    model, r, on_edge = attacks.fit_ridge(z[:250], noise_x[:250], z[250:], noise_x[250:], [1e-8, 1e-4, 1.0, 1e4])
    assert r == 1e4 and on_edge  # no signal: the strongest shrinkage wins, and the report is told it is the grid's end
    mean = noise_x[:250].mean(0)
    assert float((model(z[250:]) - mean).abs().max()) < 0.02


def test_ridge_dual_and_primal_forms_agree():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(60, 1, 2, 3, generator=g)
    wide, tall = torch.randn(60, 80, generator=g), torch.randn(60, 20, generator=g)
    for z in (wide, tall):  # n < d takes the dual form, n > d the primal one
        m, _, _ = attacks.fit_ridge(z[:50], x[:50], z[50:], x[50:], [0.1])
        zc = (z[:50] - z[:50].mean(0)).double()
        lam = 0.1 * float((zc * zc).sum(1).mean())
        xc = (x[:50].reshape(50, -1) - x[:50].reshape(50, -1).mean(0)).double()
        w = torch.linalg.solve(zc.T @ zc + lam * torch.eye(z.shape[1], dtype=torch.float64), zc.T @ xc)
        assert torch.allclose(m.w, w, atol=1e-8)


def test_decoder_stops_when_held_out_mse_stops_improving():
    """A decoder fitted to pure noise cannot improve on held-out noise: it must stop after `patience`
    evaluations, keep the best weights and report that it did not hit the cap."""
    g = torch.Generator().manual_seed(0)
    z, x = torch.randn(64, 4, 7, 7, generator=g), torch.rand(64, 1, 28, 28, generator=g)
    ap = config.AttackParams(
        batch_size=16, max_steps=10_000, eval_every=5, patience=3, decoder_lr=1e-2, min_improvement=0.0, lr_drops=0
    )
    dec, fit = attacks.fit_decoder(z[:48], x[:48], z[48:], x[48:], ap, seed=0, device=torch.device("cpu"))
    assert not fit.hit_cap and fit.steps < 10_000 and fit.lr_drops == 0
    assert (
        fit.steps - fit.best_step == ap.patience * ap.eval_every
    )  # stopped exactly `patience` evaluations after the best
    assert attacks._mse(dec, z[48:], x[48:]) == pytest.approx(fit.best_mse)  # the best weights are the ones kept
    assert fit.budget(1.0) == pytest.approx(1.0) and fit.budget(0.25) >= 1.0


def test_decoder_drops_its_learning_rate_at_each_plateau_before_it_stops():
    """With ``lr_drops`` = 2 a plateau first divides the learning rate (twice), and only the third one stops."""
    g = torch.Generator().manual_seed(0)
    z, x = torch.randn(64, 4, 7, 7, generator=g), torch.rand(64, 1, 28, 28, generator=g)
    common = dict(batch_size=16, max_steps=10_000, eval_every=5, patience=3, min_improvement=0.0)
    _, once = attacks.fit_decoder(
        z[:48], x[:48], z[48:], x[48:], config.AttackParams(lr_drops=0, **common), 0, torch.device("cpu")
    )
    _, thrice = attacks.fit_decoder(
        z[:48], x[:48], z[48:], x[48:], config.AttackParams(lr_drops=2, **common), 0, torch.device("cpu")
    )
    assert thrice.lr_drops == 2 and not thrice.hit_cap
    assert thrice.steps >= once.steps + 2 * common["patience"] * common["eval_every"]  # two more plateaus at least
    assert thrice.best_mse <= once.best_mse


def test_decoder_improvement_must_exceed_min_improvement():
    """A learnable target keeps improving by small amounts: a large ``min_improvement`` stops it sooner."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(96, 4, 7, 7, generator=g)
    x = torch.sigmoid(torch.nn.functional.interpolate(z[:, :1], size=28))
    common = dict(batch_size=16, max_steps=400, eval_every=5, patience=2, lr_drops=0)
    _, strict = attacks.fit_decoder(
        z[:80], x[:80], z[80:], x[80:], config.AttackParams(min_improvement=0.0, **common), 0, torch.device("cpu")
    )
    _, loose = attacks.fit_decoder(
        z[:80], x[:80], z[80:], x[80:], config.AttackParams(min_improvement=0.5, **common), 0, torch.device("cpu")
    )
    assert loose.steps < strict.steps


def test_decoder_starts_at_the_mean_intensity_and_standardises_its_input():
    """Step 0 already predicts about the images' mean intensity (not 0.5), whatever the scale of Z."""
    g = torch.Generator().manual_seed(0)
    z = 1000.0 + 50.0 * torch.randn(64, 4, 7, 7, generator=g)  # far from standardised
    x = 0.1 * torch.rand(64, 1, 28, 28, generator=g)  # dark images, mean 0.05
    ap = config.AttackParams(batch_size=16, max_steps=1, eval_every=1)
    dec, fit = attacks.fit_decoder(z[:48], x[:48], z[48:], x[48:], ap, seed=0, device=torch.device("cpu"))
    std = dec[0](z[:48])
    assert std.mean((0, 2, 3)).abs().max() < 1e-4 and (std.std((0, 2, 3)) - 1).abs().max() < 1e-4
    half = float(((x[48:] - 0.5) ** 2).mean())
    assert fit.curve[0][1] < 0.1 * half  # the untrained decoder is already near the mean intensity


def test_decoder_reports_the_step_cap():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 4, 7, 7, generator=g)
    x = torch.sigmoid(torch.nn.functional.interpolate(z[:, :1], size=28))  # learnable: keeps improving
    ap = config.AttackParams(batch_size=16, max_steps=12, eval_every=4, patience=50)
    _, fit = attacks.fit_decoder(z[:48], x[:48], z[48:], x[48:], ap, seed=0, device=torch.device("cpu"))
    assert fit.hit_cap and fit.steps == 12 and [s for s, _ in fit.curve] == [0, 4, 8, 12]


def test_attack_is_deterministic_and_reports_every_attack(tiny_split):
    trained = _trained(tiny_split)
    ap = config.AttackParams(leak_fraction=0.5, n_examples=4, **FAST)
    a = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0)
    b = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0)
    assert a.metrics == b.metrics
    assert a.metrics["n_leaked"] == len(tiny_split.x_train) // 2
    assert a.examples.shape == (4, 1, 28, 28)
    assert a.leaked_idx.max() < len(tiny_split.x_train)  # leaked pairs index the training split
    m = a.metrics
    assert m["strongest_attack"] in attacks.ATTACKS
    held = {k: m[f"{k}_holdout_mse"] for k in attacks.ATTACKS}
    assert m["strongest_attack"] == min(held, key=held.get)  # chosen on the held-out slice
    assert m["recon_mse"] == m[f"{m['strongest_attack']}_recon_mse"]  # and reported on test
    mean_image_mse = float(((tiny_split.x_test - tiny_split.x_train[a.leaked_idx].mean(0)) ** 2).mean())
    assert m["mean_recon_mse"] == pytest.approx(mean_image_mse, rel=0.02)  # the no-information baseline


def test_strongest_attack_beats_the_mean_image_on_undefended_activations(tiny_split):
    """Sanity of the testbed: against no defence, the strongest attack is far better than no information."""
    trained = _trained(tiny_split)
    res = attacks.decoder_attack(trained.client, tiny_split, config.AttackParams(leak_fraction=1.0, **FAST), seed=0)
    assert res.metrics["recon_mse"] < 0.5 * res.metrics["mean_recon_mse"]


def test_authors_protocol_splits_the_test_pairs():
    fit, held = attacks.authors_indices(100, 0.9, seed=0)
    assert len(fit) == 90 and len(held) == 10 and not set(fit) & set(held)
    assert (fit == attacks.authors_indices(100, 0.9, seed=0)[0]).all()
    with pytest.raises(ValueError, match=r"authors_split must be in \(0, 1\)"):
        attacks.authors_indices(100, 1.0, seed=0)


def _with_val(split):
    from nopeek_repro import data

    return data.with_validation(
        data.Split(
            split.x_train.clone(),
            split.y_train.clone(),
            split.x_test,
            split.y_test,
            split.train_idx.copy(),
            split.test_idx,
        ),
        0.2,
        0,
    )


def test_judge_is_independent_early_stopped_and_reloads(tiny_split, tmp_path):
    split = _with_val(tiny_split)
    tp = config.TrainParams(seeds=[0], epochs=1, batch_size=32)
    ap = config.AttackParams(classifier_epochs=15, classifier_patience=4, batch_size=32, classifier_seed=7)
    judge, info = attacks.train_classifier(split, tp, ap)
    assert info.seed == 7 and 1 <= info.best_epoch <= info.epochs <= 15
    assert info.hit_cap or info.epochs - info.best_epoch == 4  # stopped by patience unless the cap came first
    assert info.clean_accuracy > 0.5  # it learns: chance is 0.1
    attacks.save_classifier(judge, info, tmp_path)
    back, clean_back = attacks.load_classifier(tmp_path, split)
    assert clean_back == pytest.approx(info.clean_accuracy, abs=1e-6)
    assert (attacks.predict(back, split.x_test) == attacks.predict(judge, split.x_test)).all()
    # on the clean images themselves, the attack accuracy is the judge's clean accuracy
    assert attacks.score(split.x_test, split.x_test, split.y_test, back)["attack_accuracy"] == pytest.approx(clean_back)
    # a different architecture from the attacked split CNN (client and server), whichever the cut: its first
    # layer sees the image through another kernel, and its layers are not those of the split CNN
    for cut in ("block1", "block2"):
        model = train.train(RunSpec(), split, tp, config.ModelParams(cut_layer=cut), 0, progress=False)
        split_shapes = [tuple(p.shape) for net in (model.client.net, model.server.net) for p in net.parameters()]
        judge_shapes = [tuple(p.shape) for p in judge.parameters()]
        assert judge_shapes[0] != split_shapes[0] and judge_shapes != split_shapes


def test_judge_needs_a_validation_part(tiny_split):
    with pytest.raises(ValueError, match="needs a validation part"):
        attacks.train_classifier(tiny_split, config.TrainParams(), config.AttackParams())


def test_authors_attack_metrics(tiny_split):
    trained = _trained(tiny_split)
    authors = attacks.authors_attack(trained.client, tiny_split, config.AttackParams(**FAST, authors_split=0.9), seed=0)
    assert set(authors) == {"authors_recon_mse", "authors_recon_psnr", "authors_recon_ssim", "authors_strongest_attack"}


def test_resnet_decoder_attack_runs(tiny_split):
    trained = _trained(tiny_split)
    ap = config.AttackParams(
        leak_fraction=0.25, batch_size=16, max_steps=4, eval_every=2, n_examples=2, decoder="resnet", decoder_width=8
    )
    res = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0)
    assert res.examples.shape == (2, 1, 28, 28) and np.isfinite(res.metrics["recon_mse"])


def test_noise_attack_does_not_depend_on_earlier_attacks(tiny_split):
    """The noise defence's draws restart per attack: the main attack's score is the same whether or
    not other leak fractions were attacked first."""
    trained = _trained(tiny_split, RunSpec("noise", noise=1.0))
    ap = config.AttackParams(leak_fraction=0.5, n_examples=2, **FAST)
    first = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0)
    attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, leak_fraction=0.25)
    again = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0)
    assert first.metrics == again.metrics


def test_attack_also_scores_the_validation_part_when_there_is_one(tiny_split):
    from nopeek_repro import data

    split = data.with_validation(tiny_split, 0.1, 0)
    trained = _trained(split)
    m = attacks.decoder_attack(trained.client, split, config.AttackParams(**FAST), seed=0).metrics
    assert 0 < m["val_recon_mse"] < m["val_mean_recon_mse"]
    assert np.isnan(m["val_attack_accuracy"])  # no judge given here
    mean_image = float(
        ((split.x_val - split.x_train[attacks.leak_indices(len(split.x_train), 0.5, 0)].mean(0)) ** 2).mean()
    )
    assert m["val_mean_recon_mse"] == pytest.approx(mean_image, rel=0.02)
    assert (
        "val_recon_mse"
        not in attacks.decoder_attack(trained.client, tiny_split, config.AttackParams(**FAST), 0).metrics
    )
