"""The decoder attack: leaked pairs come from training data only; scored on held-out images."""

from __future__ import annotations

import numpy as np
import pytest

from nopeek_repro import attacks, config, train
from nopeek_repro.defences import RunSpec


def test_leak_indices():
    idx = attacks.leak_indices(1000, 0.25, seed=0)
    assert len(idx) == 250 and len(set(idx)) == 250 and idx.min() >= 0 and idx.max() < 1000
    assert (idx == attacks.leak_indices(1000, 0.25, seed=0)).all()
    assert len(attacks.leak_indices(1000, 1.0, seed=0)) == 1000
    with pytest.raises(ValueError, match=r"leak_fraction must be in \(0, 1\]"):
        attacks.leak_indices(10, 0.0, seed=0)


def test_attack_is_deterministic_and_scored_on_test_images(tiny_split):
    tp = config.TrainParams(seeds=[0], epochs=1, batch_size=32)
    trained = train.train(RunSpec(), tiny_split, tp, 1, seed=0, progress=False)
    ap = config.AttackParams(leak_fraction=0.5, epochs=2, batch_size=32, n_examples=4)
    a = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, progress=False)
    b = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, progress=False)
    assert a.metrics == b.metrics
    assert a.metrics["n_leaked"] == len(tiny_split.x_train) // 2
    assert a.examples.shape == (4, 1, 28, 28)
    # leaked pairs index the training split; the examples are the first test images' reconstructions
    assert a.leaked_idx.max() < len(tiny_split.x_train)
    assert 0 < a.metrics["recon_mse"] < 1 and np.isfinite(a.metrics["recon_psnr"])


def test_decoder_inverts_undefended_activations_better_than_the_mean_image(tiny_split):
    """Sanity of the testbed: against no defence, the decoder beats predicting the mean image."""
    tp = config.TrainParams(seeds=[0], epochs=1, batch_size=32)
    trained = train.train(RunSpec(), tiny_split, tp, 1, seed=0, progress=False)
    ap = config.AttackParams(leak_fraction=1.0, epochs=15, batch_size=32)
    res = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, progress=False)
    mean_image_mse = float(((tiny_split.x_test - tiny_split.x_train.mean(0)) ** 2).mean())
    assert res.metrics["recon_mse"] < 0.8 * mean_image_mse


def test_authors_protocol_splits_the_test_pairs():
    fit, held = attacks.authors_indices(100, 0.9, seed=0)
    assert len(fit) == 90 and len(held) == 10 and not set(fit) & set(held)
    assert (fit == attacks.authors_indices(100, 0.9, seed=0)[0]).all()
    with pytest.raises(ValueError, match=r"authors_split must be in \(0, 1\)"):
        attacks.authors_indices(100, 1.0, seed=0)


def test_attack_accuracy_and_authors_metrics(tiny_split, tmp_path):
    tp = config.TrainParams(seeds=[0], epochs=1, batch_size=32)
    ap = config.AttackParams(leak_fraction=0.5, epochs=2, batch_size=32, n_examples=4, classifier_epochs=8)
    classifier, clean = attacks.train_classifier(tiny_split, config.ModelParams(), tp, ap, progress=False)
    assert clean > 0.5  # it learns: chance is 0.1 (8 epochs over 192 digits, scored on 64 held-out ones)
    attacks.save_classifier(classifier, clean, config.ModelParams(), tmp_path)
    back, clean_back = attacks.load_classifier(tmp_path, tiny_split)
    assert clean_back == pytest.approx(clean, abs=1e-6)
    assert (attacks.predict(back, tiny_split.x_test) == attacks.predict(classifier, tiny_split.x_test)).all()
    # on the clean images themselves, "attack accuracy" is the classifier's clean accuracy
    assert attacks.score(tiny_split.x_test, tiny_split.x_test, tiny_split.y_test, back)["attack_accuracy"] == pytest.approx(clean)
    trained = train.train(RunSpec(), tiny_split, tp, 1, seed=0, progress=False)
    res = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, progress=False, classifier=back)
    assert 0 <= res.metrics["attack_accuracy"] <= 1 and res.metrics["leak_fraction"] == 0.5
    authors = attacks.authors_attack(trained.client, tiny_split, ap, seed=0, progress=False, classifier=back)
    assert set(authors) == {"authors_recon_mse", "authors_recon_psnr", "authors_recon_ssim", "authors_attack_accuracy"}


def test_resnet_decoder_attack_runs(tiny_split):
    tp = config.TrainParams(seeds=[0], epochs=1, batch_size=32)
    trained = train.train(RunSpec(), tiny_split, tp, 1, seed=0, progress=False)
    ap = config.AttackParams(leak_fraction=0.25, epochs=1, batch_size=16, n_examples=2, decoder="resnet", decoder_width=8)
    res = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, progress=False)
    assert res.examples.shape == (2, 1, 28, 28) and np.isfinite(res.metrics["recon_mse"])


def test_noise_attack_does_not_depend_on_earlier_attacks(tiny_split):
    """The noise defence's draws restart per attack: the main attack's score is the same whether or
    not other leak fractions were attacked first."""
    tp = config.TrainParams(seeds=[0], epochs=1, batch_size=32)
    trained = train.train(RunSpec("noise", noise=1.0), tiny_split, tp, 1, seed=0, progress=False)
    ap = config.AttackParams(leak_fraction=0.5, epochs=1, batch_size=32, n_examples=2)
    first = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, progress=False)
    attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, progress=False, leak_fraction=0.25)
    again = attacks.decoder_attack(trained.client, tiny_split, ap, seed=0, progress=False)
    assert first.metrics == again.metrics
