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
    assert a.examples.shape == (4, 28, 28)
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
