"""The decoder (model-inversion) attack on leaked activation/input pairs, and how it is scored.

Threat model (worst case of the paper's testbed): the attacker sees what the server sees, the
activations ``Z`` the trained client sends (noise included for the noise defence), and holds the
raw inputs ``X`` of some of them. It trains a decoder ``Z -> X`` with MSE (Adam) on those pairs and
reconstructs inputs it never saw from their activations alone. Two protocols:

- **leaked training pairs** (the kit's main protocol): the pairs of a random ``leak_fraction`` of
  the *training* set; scored on the whole *held-out test* set. ``leak_sweep`` repeats it at other
  fractions (the leak-fraction figure). Test images are never among the leaked pairs, so the score
  measures inversion of unseen inputs, not memorisation.
- **the authors' protocol**: a seeded ``authors_split`` (0.9) of the *test-set* pairs trains the
  decoder, the other 10 % score it (their mystique code), for comparability with their numbers.

Every decoder trains for the same number of optimiser steps: ``attack.epochs`` passes over the
main protocol's leaked pairs (:func:`decoder_steps`). A decoder given fewer pairs makes more passes
over them, so the leak-fraction sweep measures how much data the attacker holds, not how long it
trained.

Scores: ``recon_mse``, ``recon_psnr`` (peak 1), ``recon_ssim`` (:mod:`nopeek_repro.metrics`), and
``attack_accuracy`` (Titcombe et al. 2021): the accuracy of a classifier trained on *clean*
training images when it is run on the reconstructions; it measures how much of the semantic
content (the class) the reconstructions carry. Chance is 1 / n_classes; the classifier's accuracy
on clean test images (``clean_accuracy``) is the ceiling. Pairs are matched by index, never by
file order.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import AttackParams, ModelParams, TrainParams
from .data import Split
from .metrics import accuracy, reconstruction_metrics
from .models import build_decoder, build_split_model
from .split import Client
from .train import batches, progress_bar, resolve_device

log = logging.getLogger(__name__)


@dataclass
class AttackResult:
    metrics: dict[str, float]  # recon_mse, recon_psnr, recon_ssim, [attack_accuracy], n_leaked, final_train_mse
    examples: np.ndarray  # (k, c, h, w) reconstructions of the test images example_indices picks, in [0, 1]
    leaked_idx: np.ndarray  # indices into the training split of the leaked pairs


def example_indices(labels: torch.Tensor, k: int) -> np.ndarray:
    """k test positions covering the classes in turn: the first 0, the first 1, ..., then the second 0, ..."""
    y = labels.numpy()
    per_class = [np.flatnonzero(y == c).tolist() for c in np.unique(y)]
    out: list[int] = []
    rank = 0
    while len(out) < min(k, len(y)):
        out += [idx[rank] for idx in per_class if rank < len(idx)][: k - len(out)]
        rank += 1
    return np.array(out, dtype=np.int64)


def leak_indices(n_train: int, leak_fraction: float, seed: int) -> np.ndarray:
    """A seeded random subset of ``ceil(leak_fraction * n_train)`` training indices."""
    if not 0 < leak_fraction <= 1:
        raise ValueError(f"leak_fraction must be in (0, 1], got {leak_fraction}")
    k = max(2, math.ceil(leak_fraction * n_train))
    return np.sort(np.random.default_rng(seed + 104729).permutation(n_train)[:k])


def authors_indices(n_test: int, train_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The authors' protocol: a seeded (train_share, 1 - train_share) split of the test-set positions."""
    if not 0 < train_share < 1:
        raise ValueError(f"authors_split must be in (0, 1), got {train_share}")
    perm = np.random.default_rng(seed + 15485863).permutation(n_test)
    k = min(n_test - 2, max(2, int(round(train_share * n_test))))
    return np.sort(perm[:k]), np.sort(perm[k:])


def decoder_steps(n_train: int, params: AttackParams) -> int:
    """The optimiser steps every decoder takes: ``attack.epochs`` passes over the main leaked set."""
    n_leak = len(leak_indices(n_train, params.leak_fraction, 0))
    return params.epochs * len(batches(n_leak, params.batch_size, torch.Generator().manual_seed(0)))


def fit_decoder(z: Tensor, x: Tensor, params: AttackParams, seed: int, device: torch.device, steps: int,
                progress: bool = True, desc: str = "decoder") -> tuple[nn.Module, float]:
    """Train a decoder Z -> X on the given pairs (MSE, Adam) for ``steps`` optimiser steps (whole
    shuffled passes, the last one cut short); returns it and the mean MSE of its last pass."""
    torch.manual_seed(seed)
    decoder = build_decoder(params.decoder, tuple(z.shape[1:]), tuple(x.shape[1:]), width=params.decoder_width).to(device)
    opt = torch.optim.Adam(decoder.parameters(), lr=params.lr)
    order = torch.Generator().manual_seed(seed)
    per_pass = len(batches(len(x), params.batch_size, torch.Generator().manual_seed(0)))
    last, done = float("nan"), 0
    for _ in progress_bar(range(math.ceil(steps / per_pass)), desc, progress):
        decoder.train()
        total, count = 0.0, 0
        for batch in batches(len(x), params.batch_size, order)[: steps - done]:
            done += 1
            zb, xb = z[batch].to(device), x[batch].to(device)
            loss = F.mse_loss(decoder(zb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
        last = total / count
    decoder.eval()
    return decoder, last


@torch.no_grad()
def reconstruct(decoder: nn.Module, z: Tensor, batch_size: int = 512) -> Tensor:
    """Decoder outputs for activations ``z`` (on the CPU)."""
    dev = next(decoder.parameters()).device
    return torch.cat([decoder(z[i : i + batch_size].to(dev)).cpu() for i in range(0, len(z), batch_size)])


@torch.no_grad()
def predict(classifier: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Class predictions of a whole (unsplit) classifier, on the CPU."""
    classifier.eval()
    dev = next(classifier.parameters()).device
    return torch.cat([classifier(x[i : i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


def score(recon: Tensor, target: Tensor, labels: Tensor, classifier: nn.Module | None) -> dict[str, float]:
    """Reconstruction metrics, plus ``attack_accuracy`` when a classifier is given."""
    out = reconstruction_metrics(recon, target)
    if classifier is not None:
        out["attack_accuracy"] = accuracy(predict(classifier, recon), labels)
    return out


def decoder_attack(client: Client, split: Split, params: AttackParams, seed: int, progress: bool = True,
                   leak_fraction: float | None = None, classifier: nn.Module | None = None) -> AttackResult:
    """Leaked training pairs -> decoder -> scored on the held-out test images (see module doc)."""
    fraction = params.leak_fraction if leak_fraction is None else leak_fraction
    client.reset_noise(seed)  # the same noise draws whatever other attacks ran before this one
    leaked = leak_indices(len(split.x_train), fraction, seed)
    x_leak = split.x_train[leaked]
    z_leak = client.activations(x_leak)  # what the server saw for these inputs
    decoder, last = fit_decoder(z_leak, x_leak, params, seed, client.device, decoder_steps(len(split.x_train), params),
                                progress, f"decoder seed {seed} leak {fraction:g}")
    recon = reconstruct(decoder, client.activations(split.x_test))
    metrics = score(recon, split.x_test, split.y_test, classifier)
    metrics.update(leak_fraction=fraction, n_leaked=int(len(leaked)), final_train_mse=last)
    log.info("attack seed %d leak %g: %s", seed, fraction, metrics)
    shown = example_indices(split.y_test, params.n_examples)
    return AttackResult(metrics, recon[shown].numpy(), leaked)


def authors_attack(client: Client, split: Split, params: AttackParams, seed: int, progress: bool = True,
                   classifier: nn.Module | None = None) -> dict[str, float]:
    """The authors' protocol: decoder on ``authors_split`` of the test-set pairs, scored on the rest.

    Returns the metrics with an ``authors_`` prefix (``authors_recon_mse``, ...).
    """
    assert params.authors_split is not None
    fit, held = authors_indices(len(split.x_test), params.authors_split, seed)
    client.reset_noise(seed)
    z_test = client.activations(split.x_test)
    decoder, _ = fit_decoder(z_test[fit], split.x_test[fit], params, seed, client.device,
                             decoder_steps(len(split.x_train), params), progress,
                             f"decoder seed {seed} authors {params.authors_split:g}")
    metrics = score(reconstruct(decoder, z_test[held]), split.x_test[held], split.y_test[held], classifier)
    return {f"authors_{k}": v for k, v in metrics.items()}


def train_classifier(split: Split, model: ModelParams, train_params: TrainParams, params: AttackParams,
                     seed: int = 0, progress: bool = True) -> tuple[nn.Module, float]:
    """The attack-accuracy classifier: the data set's architecture, unsplit, trained on clean training images.

    Adam at ``attack.lr`` for ``attack.classifier_epochs`` epochs, batch ``attack.batch_size``.
    Returns the network (eval mode) and its accuracy on the clean test images.
    """
    torch.manual_seed(seed)
    client, server = build_split_model(model.arch, model.cut_layer, split.image_shape, split.n_classes, **model.options())
    net = nn.Sequential(client, server).to(resolve_device(train_params.device))
    dev = next(net.parameters()).device
    opt = torch.optim.Adam(net.parameters(), lr=params.lr)
    order = torch.Generator().manual_seed(seed)
    for _ in progress_bar(range(params.classifier_epochs), "attack classifier", progress):
        net.train()
        for batch in batches(len(split.x_train), params.batch_size, order):
            loss = F.cross_entropy(net(split.x_train[batch].to(dev)), split.y_train[batch].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    return net, accuracy(predict(net, split.x_test), split.y_test)


def save_classifier(net: nn.Module, clean_accuracy: float, model: ModelParams, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "classifier.pt")
    doc = {"clean_accuracy": round(clean_accuracy, 6), "model": model.model_dump()}
    (folder / "classifier.json").write_text(json.dumps(doc, indent=1) + "\n")


def load_classifier(folder: Path, split: Split, device: str = "cpu") -> tuple[nn.Module, float]:
    """The classifier saved by :func:`save_classifier` and its clean test accuracy."""
    if not (folder / "classifier.json").is_file():
        raise FileNotFoundError(f"{folder}: no attack classifier here; run the prepare stage first (dvc repro prepare)")
    doc = json.loads((folder / "classifier.json").read_text())
    model = ModelParams(**doc["model"])
    client, server = build_split_model(model.arch, model.cut_layer, split.image_shape, split.n_classes, **model.options())
    net = nn.Sequential(client, server)
    net.load_state_dict(torch.load(folder / "classifier.pt", weights_only=True, map_location="cpu"))
    return net.to(resolve_device(device)).eval(), float(doc["clean_accuracy"])
