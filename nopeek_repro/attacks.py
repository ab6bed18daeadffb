"""The attacks on leaked activation/input pairs, the strongest of them, and how they are scored.

Threat model (worst case of the paper's testbed): the attacker sees what the server sees, the
activations ``Z`` the trained client sends (noise included for the noise defence), and holds the
raw inputs ``X`` of some of them. From those pairs it learns a map ``Z -> X`` and reconstructs
inputs it never saw from their activations alone. Three attacks, on the same leaked pairs:

- ``decoder``: a learned decoder (:func:`nopeek_repro.models.build_decoder`) behind a per-channel
  standardisation of Z fitted on the leaked pairs, MSE, Adam at ``decoder_lr``, trained **until it
  stops improving** on a held-out slice of the leaked pairs (Keras' ReduceLROnPlateau + EarlyStopping):
  evaluated every ``eval_every`` steps; an evaluation *improves* when the held-out MSE falls more
  than ``min_improvement`` (relative) below the reference (the MSE of the last evaluation that
  improved; after a drop, the lowest so far); after ``patience`` evaluations without
  one the learning rate is multiplied by :data:`LR_DROP`, at most ``lr_drops`` times, and the next
  such plateau stops it; ``max_steps`` caps it (``decoder_hit_cap`` says so). The weights with the
  lowest held-out MSE are kept.
- ``ridge``: linear ridge regression ``X ~ W (Z - mean Z) + mean X`` in closed form (float64),
  regulariser ``lambda = r * mean_i |z_i - mean Z|^2`` with ``r`` chosen from ``ridge_grid`` on the
  same held-out slice (``ridge_on_edge`` = 1 when the best ``r`` is an end of the grid).
- ``mean``: the no-information baseline, the mean leaked image for every input.

The held-out slice (``holdout_fraction`` of the leaked pairs, seeded) is never fitted on; the
**strongest** attack is the one with the lowest MSE on it, and every reported score
(``recon_mse``, ``recon_psnr``, ``recon_ssim``, ``attack_accuracy``) is that attack's on the
evaluation images, which no attack saw. The per-attack MSEs are reported beside it
(``decoder_recon_mse``, ``ridge_recon_mse``, ``mean_recon_mse``).

Protocols:

- **leaked training pairs** (the kit's main protocol): the pairs of a random ``leak_fraction`` of
  the *training* set, scored on the whole *held-out test* set; ``leak_sweep`` repeats it at other
  fractions (the leak-fraction figure). Test images are never among the leaked pairs.
- **the authors' protocol**: a seeded ``authors_split`` (0.9) of the *test-set* pairs is leaked,
  the other 10 % score it (their mystique code); metrics with an ``authors_`` prefix.

Attack budget: the decoder's held-out curve gives ``decoder_budget_25`` and ``decoder_budget_50``,
the best held-out MSE within the first quarter and half of its steps divided by its final best
(1 = converged by then; the report shows them).

``attack_accuracy`` (Titcombe et al. 2021) is the accuracy of the judge
(:func:`nopeek_repro.models.build_judge`, trained on clean training images with its own seed and
early stopping on the validation part) on the reconstructions: how much of the class they carry.
Chance is 1 / n_classes; the judge's accuracy on clean test images (``clean_accuracy``) is the
ceiling. Pairs are matched by index, never by file order.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import AttackParams, TrainParams
from .data import Split
from .metrics import accuracy, reconstruction_metrics
from .models import Standardize, build_decoder, build_judge
from .runtime import Progress, batches, load_weights, resolve_device
from .split import Client

log = logging.getLogger(__name__)

ATTACKS: tuple[str, ...] = ("decoder", "ridge", "mean")
"""The attacks every protocol runs, in the order they are reported."""


@dataclass
class AttackResult:
    metrics: dict[str, float | str]  # strongest attack's scores, per-attack MSEs, decoder/ridge diagnostics
    examples: np.ndarray  # (k, c, h, w) the strongest attack's reconstructions of the example test images
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


MIN_LEAKED = 4
"""Fewest leaked pairs an attack works with: at least 2 to fit (a mini-batch) and 1 held out."""


def leak_indices(n_train: int, leak_fraction: float, seed: int) -> np.ndarray:
    """A seeded random subset of ``ceil(leak_fraction * n_train)`` (at least 4) training indices."""
    if not 0 < leak_fraction <= 1:
        raise ValueError(f"leak_fraction must be in (0, 1], got {leak_fraction}")
    k = min(n_train, max(MIN_LEAKED, math.ceil(leak_fraction * n_train)))
    return np.sort(np.random.default_rng(seed + 104729).permutation(n_train)[:k])


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (fit, held out) of ``n`` leaked pairs: a seeded ``fraction`` (at least 1) held out, at least 2 fitted."""
    if n < MIN_LEAKED - 1:
        raise ValueError(f"an attack needs at least {MIN_LEAKED - 1} leaked pairs, got {n}")
    k = min(n - 2, max(1, int(round(fraction * n))))
    perm = np.random.default_rng(seed + 3571).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def authors_indices(n_test: int, train_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The authors' protocol: a seeded (train_share, 1 - train_share) split of the test-set positions."""
    if not 0 < train_share < 1:
        raise ValueError(f"authors_split must be in (0, 1), got {train_share}")
    perm = np.random.default_rng(seed + 15485863).permutation(n_test)
    k = min(n_test - 2, max(MIN_LEAKED, int(round(train_share * n_test))))
    return np.sort(perm[:k]), np.sort(perm[k:])


LR_DROP = 0.2
"""Factor applied to the decoder's learning rate at each plateau (``attack.lr_drops`` times at most)."""


@dataclass
class FitLog:
    """How a decoder's training went: its held-out curve and why it stopped."""

    steps: int = 0
    best_step: int = 0
    best_mse: float = float("inf")
    hit_cap: bool = False
    lr_drops: int = 0  # learning-rate drops taken at plateaus
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out MSE)

    def budget(self, share: float) -> float:
        """Best held-out MSE within the first ``share`` of the steps, over the final best (>= 1)."""
        within = [m for s, m in self.curve if s <= share * self.steps]
        return min(within) / self.best_mse if within and self.best_mse > 0 else float("nan")


@torch.no_grad()
def _mse(model: nn.Module, z: Tensor, x: Tensor, batch_size: int = 512) -> float:
    model.eval()
    dev = next(model.parameters()).device
    total = sum(
        float(F.mse_loss(model(z[i : i + batch_size].to(dev)), x[i : i + batch_size].to(dev), reduction="sum"))
        for i in range(0, len(z), batch_size)
    )
    return total / x.numel()


@torch.no_grad()
def _start_at_mean_intensity(decoder: nn.Module, x: Tensor) -> None:
    """Set the bias of the decoder's last convolution (before its sigmoid) to ``logit(mean pixel)`` per channel.

    The decoder then starts near the images' mean intensity instead of 0.5 everywhere; a decoder
    started at 0.5 on nearly uninformative Z (the noise defence at b = 8) was seen to fall to a
    constant-zero output (MSE 0.110, worse than the mean image) within the first evaluations.
    """
    last = [m for m in decoder.modules() if isinstance(m, nn.Conv2d)][-1]
    if last.bias is not None and last.out_channels == x.shape[1]:
        mean = x.double().mean([0, *range(2, x.dim())]).clamp(1e-3, 1 - 1e-3)
        last.bias.copy_(torch.logit(mean).to(last.bias))


def fit_decoder(
    z: Tensor, x: Tensor, z_hold: Tensor, x_hold: Tensor, params: AttackParams, seed: int, device: torch.device
) -> tuple[nn.Module, FitLog]:
    """Train a decoder Z -> X on ``(z, x)`` (MSE, Adam) until its MSE on ``(z_hold, x_hold)`` stops improving.

    The decoder sees Z standardised per channel with the statistics of ``z``. Evaluated on the
    held-out pairs at step 0 and every ``eval_every`` steps; an evaluation improves when its MSE is
    below ``(1 - min_improvement)`` times the reference: the MSE of the last evaluation that improved (after a
    learning-rate drop, the lowest so far). After ``patience`` evaluations without
    improvement the learning rate drops by :data:`LR_DROP` (at most ``lr_drops`` times), the next
    such plateau stops training, and ``max_steps`` caps it. Returns the weights with the lowest
    held-out MSE (eval mode) and the log.
    """
    torch.manual_seed(seed)
    decoder = nn.Sequential(
        Standardize.fit(z),
        build_decoder(
            params.decoder,
            tuple(z.shape[1:]),
            cast("tuple[int, int, int]", tuple(x.shape[1:])),
            width=params.decoder_width,
        ),
    )
    _start_at_mean_intensity(decoder, x)
    # NHWC ("channels last") convolutions: the decoder trains ~17 % faster on the CPU, same math
    # (benchmarks/bench_decoder.py); deterministic like the default layout, not bitwise equal to it
    fmt = torch.channels_last if z.dim() == 4 else torch.contiguous_format
    # torch's Module.to overloads do not accept device and memory_format together; the runtime does
    decoder = decoder.to(device, memory_format=fmt)  # type: ignore[call-overload]
    opt = torch.optim.Adam(decoder.parameters(), lr=params.decoder_lr)
    order = torch.Generator().manual_seed(seed)
    fit = FitLog()
    best_state = copy.deepcopy(decoder.state_dict())
    fit.best_mse = reference = _mse(decoder, z_hold, x_hold)
    fit.curve.append((0, fit.best_mse))
    bad, stop = 0, False
    while not stop:
        decoder.train()
        for batch in batches(len(x), params.batch_size, order):
            loss = F.mse_loss(decoder(z[batch].to(device).contiguous(memory_format=fmt)), x[batch].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            fit.steps += 1
            if fit.steps % params.eval_every == 0 or fit.steps == params.max_steps:
                m = _mse(decoder, z_hold, x_hold)
                decoder.train()
                fit.curve.append((fit.steps, m))
                if (line := Progress.current()) is not None:
                    line.note(decoder_step=fit.steps, holdout_mse=m)
                if m < fit.best_mse:
                    fit.best_mse, fit.best_step = m, fit.steps
                    best_state = copy.deepcopy(decoder.state_dict())
                if m < (1.0 - params.min_improvement) * reference:
                    reference, bad = m, 0
                else:
                    bad += 1
                if bad >= params.patience:
                    if fit.lr_drops >= params.lr_drops:
                        stop = True
                        break
                    fit.lr_drops, bad, reference = fit.lr_drops + 1, 0, fit.best_mse
                    for group in opt.param_groups:
                        group["lr"] *= LR_DROP
            if fit.steps >= params.max_steps:
                fit.hit_cap, stop = True, True
                break
    decoder.load_state_dict(best_state)
    return decoder.eval(), fit


class Ridge(nn.Module):
    """A fitted linear map ``x = W (z - mean_z) + mean_x`` (float64 inside), images clamped to [0, 1]."""

    w: Tensor  # buffers (registered in __init__), declared for the type checker
    mean_z: Tensor
    mean_x: Tensor

    def __init__(self, w: Tensor, mean_z: Tensor, mean_x: Tensor, x_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.register_buffer("mean_z", mean_z)
        self.register_buffer("mean_x", mean_x)
        self.x_shape = tuple(x_shape)
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # so next(parameters()) gives the device

    def forward(self, z: Tensor) -> Tensor:
        zc = z.reshape(len(z), -1).to(self.w) - self.mean_z
        return (zc @ self.w + self.mean_x).clamp(0.0, 1.0).reshape(len(z), *self.x_shape).to(z.dtype)


@torch.no_grad()
def fit_ridge(z: Tensor, x: Tensor, z_hold: Tensor, x_hold: Tensor, grid: list[float]) -> tuple[Ridge, float, bool]:
    """Closed-form ridge regression Z -> X on ``(z, x)``; the regulariser is chosen on the held-out pairs.

    ``lambda = r * mean_i |z_i - mean z|^2`` for each ``r`` of ``grid``, solved from one eigendecomposition
    of the smaller of ``Zc Zc^T`` (n x n, dual form) and ``Zc^T Zc`` (d x d, primal form). Returns the
    model at the best ``r`` (lowest held-out MSE), that ``r``, and whether it is an end of the grid.
    """
    dev = z.device
    zf, xf = z.reshape(len(z), -1).double(), x.reshape(len(x), -1).double()
    mz, mx = zf.mean(0), xf.mean(0)
    zc, xc = zf - mz, xf - mx
    scale = float((zc * zc).sum(1).mean())
    zh, xh = z_hold.reshape(len(z_hold), -1).to(dev).double() - mz, x_hold.reshape(len(x_hold), -1).to(dev).double()
    dual = zc.shape[0] <= zc.shape[1]
    s, u = torch.linalg.eigh(zc @ zc.T if dual else zc.T @ zc)
    s = s.clamp(min=0.0)
    if dual:  # held-out predictions through the kernel, no d_z x d_x matrix per candidate
        proj, left = u.T @ xc, (zh @ zc.T) @ u  # U^T Xc;  Zh Zc^T U
    else:
        proj, left = u.T @ (zc.T @ xc), zh @ u  # V^T Zc^T Xc;  Zh V
    best: tuple[float, float] | None = None
    for r in sorted(grid):
        lam = r * scale if scale > 0 else r
        mse = float(((left @ (proj / (s + lam)[:, None]) + mx).clamp(0.0, 1.0) - xh).pow(2).mean())
        if best is None or mse < best[0]:
            best = (mse, r)
    assert best is not None
    r = best[1]
    coef = u @ (proj / (s + (r * scale if scale > 0 else r))[:, None])
    w = zc.T @ coef if dual else coef  # d_z x d_x
    return Ridge(w, mz, mx, tuple(x.shape[1:])).to(dev), r, r in (min(grid), max(grid))


class MeanImage(nn.Module):
    """The no-information attack: the mean leaked image, whatever the activations."""

    image: Tensor  # a buffer (registered in __init__), declared for the type checker

    def __init__(self, x: Tensor) -> None:
        super().__init__()
        self.register_buffer("image", x.double().mean(0).to(x.dtype))
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, z: Tensor) -> Tensor:
        return self.image.expand(len(z), *self.image.shape).clone()


def attack_pairs(
    z_leak: Tensor,
    x_leak: Tensor,
    z_eval: Tensor,
    x_eval: Tensor,
    y_eval: Tensor,
    params: AttackParams,
    seed: int,
    device: torch.device,
    classifier: nn.Module | None = None,
    val: tuple[Tensor, Tensor, Tensor] | None = None,
) -> tuple[dict[str, float | str], Tensor]:
    """Every attack of :data:`ATTACKS` on the leaked pairs, the strongest chosen on their held-out slice.

    Returns the metrics (the strongest attack's ``recon_*`` / ``attack_accuracy`` and its name as
    ``strongest_attack``; per attack ``<name>_holdout_mse`` and ``<name>_recon_mse``, ``<name>_recon_ssim``,
    ``<name>_attack_accuracy``; the decoder's ``decoder_steps``, ``decoder_best_step``, ``decoder_hit_cap``,
    ``decoder_budget_25``, ``decoder_budget_50``; ridge's ``ridge_r`` and ``ridge_on_edge``) and the
    strongest attack's reconstructions of ``z_eval``. With ``val`` = (Z, X, y) of the validation part, also
    ``val_recon_mse`` and ``val_attack_accuracy`` of the strongest attack and ``val_mean_recon_mse`` of the
    no-information one, scored there (what the study selects on).
    """
    fit, hold = holdout_split(len(x_leak), params.holdout_fraction, seed)
    zf, xf, zh, xh = z_leak[fit], x_leak[fit], z_leak[hold], x_leak[hold]
    decoder, log_ = fit_decoder(zf, xf, zh, xh, params, seed, device)
    ridge, r, on_edge = fit_ridge(zf.to(device), xf.to(device), zh, xh, params.ridge_grid)
    models: dict[str, nn.Module] = {"decoder": decoder, "ridge": ridge, "mean": MeanImage(xf).to(device)}
    out: dict[str, float | str] = {}
    recons, held, scores = {}, {}, {}
    for name, model in models.items():
        held[name] = log_.best_mse if name == "decoder" else _mse(model, zh, xh)
        recons[name] = reconstruct(model, z_eval)
        scores[name] = score(recons[name], x_eval, y_eval, classifier)
        out[f"{name}_holdout_mse"] = held[name]
        out.update(
            {f"{name}_{k}": v for k, v in scores[name].items() if k in ("recon_mse", "recon_ssim", "attack_accuracy")}
        )
    strongest = min(ATTACKS, key=lambda a: (held[a], ATTACKS.index(a)))
    out = {
        **scores[strongest],
        "strongest_attack": strongest,
        **out,
        "decoder_steps": log_.steps,
        "decoder_best_step": log_.best_step,
        "decoder_hit_cap": int(log_.hit_cap),
        "decoder_lr_drops": log_.lr_drops,
        "decoder_budget_25": log_.budget(0.25),
        "decoder_budget_50": log_.budget(0.5),
        "ridge_r": r,
        "ridge_on_edge": int(on_edge),
        "n_leaked": len(x_leak),
        "n_holdout": len(hold),
    }
    if val is not None:
        z_val, x_val, y_val = val
        on_val = score(reconstruct(models[strongest], z_val), x_val, y_val, classifier)
        out["val_recon_mse"] = on_val["recon_mse"]
        out["val_attack_accuracy"] = on_val.get("attack_accuracy", float("nan"))
        out["val_mean_recon_mse"] = score(reconstruct(models["mean"], z_val), x_val, y_val, None)["recon_mse"]
    if log_.hit_cap:
        log.warning(
            "decoder seed %d hit attack.max_steps = %d while still improving its held-out MSE", seed, params.max_steps
        )
    return out, recons[strongest]


def decoder_attack(
    client: Client,
    split: Split,
    params: AttackParams,
    seed: int,
    leak_fraction: float | None = None,
    classifier: nn.Module | None = None,
) -> AttackResult:
    """Leaked training pairs -> every attack -> the strongest, scored on the held-out test images (module doc)."""
    fraction = params.leak_fraction if leak_fraction is None else leak_fraction
    client.reset_noise(seed)  # the same noise draws whatever other attacks ran before this one
    leaked = leak_indices(len(split.x_train), fraction, seed)
    x_leak = split.x_train[leaked]
    z_leak = client.activations(x_leak)  # what the server saw for these inputs
    metrics, recon = attack_pairs(
        z_leak,
        x_leak,
        client.activations(split.x_test),
        split.x_test,
        split.y_test,
        params,
        seed,
        client.device,
        classifier,
        None
        if split.x_val is None or split.y_val is None
        else (client.activations(split.x_val), split.x_val, split.y_val),
    )
    metrics["leak_fraction"] = fraction
    log.info(
        "attack on seed %d, leak %g: strongest %s, test MSE %.4g, attack accuracy %.3f",
        seed,
        fraction,
        metrics["strongest_attack"],
        metrics["recon_mse"],
        metrics.get("attack_accuracy", float("nan")),
    )
    log.debug("attack seed %d leak %g: %s", seed, fraction, metrics)
    shown = example_indices(split.y_test, params.n_examples)
    return AttackResult(metrics, recon[shown].numpy(), leaked)


def authors_attack(
    client: Client, split: Split, params: AttackParams, seed: int, classifier: nn.Module | None = None
) -> dict[str, float | str]:
    """The authors' protocol: every attack on ``authors_split`` of the test-set pairs, scored on the rest.

    Returns the strongest attack's metrics and its name with an ``authors_`` prefix
    (``authors_recon_mse``, ``authors_strongest_attack``, ...).
    """
    assert params.authors_split is not None
    fit, held = authors_indices(len(split.x_test), params.authors_split, seed)
    client.reset_noise(seed)
    z_test = client.activations(split.x_test)
    metrics, _ = attack_pairs(
        z_test[fit],
        split.x_test[fit],
        z_test[held],
        split.x_test[held],
        split.y_test[held],
        params,
        seed,
        client.device,
        classifier,
    )
    keep = ("recon_mse", "recon_psnr", "recon_ssim", "attack_accuracy", "strongest_attack")
    return {f"authors_{k}": metrics[k] for k in keep if k in metrics}


@torch.no_grad()
def reconstruct(decoder: nn.Module, z: Tensor, batch_size: int = 512) -> Tensor:
    """Decoder outputs for activations ``z`` (on the CPU)."""
    decoder.eval()
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
    out: dict[str, float] = reconstruction_metrics(recon, target)
    if classifier is not None:
        out["attack_accuracy"] = accuracy(predict(classifier, recon), labels)
    return out


@dataclass
class JudgeInfo:
    """The judge's training record (saved as ``classifier.json``)."""

    clean_accuracy: float  # on the clean test images
    val_accuracy: float  # best, on the validation part (what early stopping selected)
    epochs: int  # epochs trained
    best_epoch: int
    hit_cap: bool
    seed: int


def train_classifier(
    split: Split, train_params: TrainParams, params: AttackParams, progress: bool = True
) -> tuple[nn.Module, JudgeInfo]:
    """The judge (:func:`nopeek_repro.models.build_judge`), trained on clean training images.

    Seed ``attack.classifier_seed`` (initial weights, batch order, dropout), Adam at ``attack.classifier_lr``,
    batch ``attack.batch_size``; after every epoch its accuracy on the validation part is measured,
    training stops after ``classifier_patience`` epochs without a higher one or at
    ``classifier_epochs``, and the best epoch's weights are kept. Needs ``split.x_val``.
    """
    if split.x_val is None or split.y_val is None:
        raise ValueError("the judge needs a validation part (data.val_fraction); this split has none")
    seed = params.classifier_seed
    torch.manual_seed(seed)
    net = build_judge(split.image_shape, split.n_classes).to(resolve_device(train_params.device))
    dev = next(net.parameters()).device
    opt = torch.optim.Adam(net.parameters(), lr=params.classifier_lr)
    order = torch.Generator().manual_seed(seed)
    best, best_epoch, best_state, epoch = -1.0, 0, copy.deepcopy(net.state_dict()), 0
    with Progress(params.classifier_epochs, "the judge (early stopping)", "epochs", progress) as line:
        for epoch in range(1, params.classifier_epochs + 1):
            net.train()
            for batch in batches(len(split.x_train), params.batch_size, order):
                loss = F.cross_entropy(net(split.x_train[batch].to(dev)), split.y_train[batch].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            val = accuracy(predict(net, split.x_val), split.y_val)
            line.update(1, val_acc=f"{val:.4f}")
            log.debug("judge epoch %d: validation accuracy %.4f", epoch, val)
            if val > best:
                best, best_epoch, best_state = val, epoch, copy.deepcopy(net.state_dict())
            elif epoch - best_epoch >= params.classifier_patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    info = JudgeInfo(
        clean_accuracy=accuracy(predict(net, split.x_test), split.y_test),
        val_accuracy=best,
        epochs=epoch,
        best_epoch=best_epoch,
        hit_cap=epoch == params.classifier_epochs and best_epoch == epoch,
        seed=seed,
    )
    return net, info


def save_classifier(net: nn.Module, info: JudgeInfo, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "classifier.pt")
    doc = {"arch": "judge", **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in info.__dict__.items()}}
    (folder / "classifier.json").write_text(json.dumps(doc, indent=1) + "\n")


def load_classifier(folder: Path, split: Split, device: str = "cpu") -> tuple[nn.Module, float]:
    """The judge saved by :func:`save_classifier` and its clean test accuracy."""
    if not (folder / "classifier.json").is_file():
        raise FileNotFoundError(f"{folder}: no attack classifier here; run the prepare stage first (dvc repro prepare)")
    doc = json.loads((folder / "classifier.json").read_text())
    net = build_judge(split.image_shape, split.n_classes)
    net.load_state_dict(load_weights(folder / "classifier.pt"))
    return net.to(resolve_device(device)).eval(), float(doc["clean_accuracy"])
