"""Training split models: the baseline, NoPeek and the uniform-noise defence, one loop for all.

Per epoch the history records ``train_ce`` (mean batch CE), ``train_dcor`` (mean batch DCOR,
V-statistic, before noise; the squared-distance statistic when the client trains with it), ``test_accuracy`` and ``test_dcor`` (DCOR(X, Z) over the whole test
set, V-statistic, on what the server sees). After training, :func:`evaluate` gives the final
``test_accuracy`` and leakage with both estimators (V-statistic ``leakage_dcor`` as in the paper,
bias-corrected ``leakage_dcor_unbiased`` = dCor^2_U).

The history also carries the collapse diagnostics (evidence notes, section 5), per epoch:
``dead_channels`` and ``z_std`` (:func:`cut_statistics` of the client's noise-free Z on the
validation part) and ``grad_ratio`` = |alpha_dcor * dDCOR/dtheta| / |dL_task/dtheta| on the
client's parameters, measured on the epoch's last batch (:meth:`nopeek_repro.split.Client.backward`
with ``diagnose``; 0 without a DCOR term). Measuring them changes no trained number.

Same parameters and seed give the same numbers on the CPU: seeds fix the initial weights, the
batch order and the noise, and the thread count is fixed by the caller. ``train.device`` picks
where the two parties' networks run (``auto``: CUDA when available); the data stay on the CPU and
each batch is moved to the party's device. Learning rates follow a step decay (``lr_milestones``,
``lr_gamma``; none by default), applied to the client and the server alike. With ``alpha_ramp`` = r
> 0 the client's DCOR weight at optimiser step t (from 1) is ``alpha_dcor * min(1, t / (r * steps
per epoch))``; the client's optimiser is ``client_optimizer`` at ``client_lr`` (default ``lr``).

A batch whose cross-entropy is not finite or above :data:`CE_DIVERGED`, or whose DCOR is not finite,
stops training with :class:`TrainingDiverged` (naming train.lr and the run's alpha_dcor or noise b):
a diverged model is never saved, measured or attacked.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .config import ModelParams, ParamsError, TrainParams
from .data import Split
from .dcor import leakage
from .defences import RunSpec
from .metrics import accuracy
from .models import build_split_model
from .runtime import Progress, batches, load_weights, n_batches, resolve_device, set_determinism
from .split import Client, Server

log = logging.getLogger(__name__)


@dataclass
class Trained:
    spec: RunSpec
    seed: int
    model: ModelParams
    client: Client
    server: Server
    history: pd.DataFrame
    batch_size: int | None = None  # the training batch size (the per-batch DCOR's n)


DIAGNOSTICS = ("dead_channels", "z_std", "grad_ratio")
"""The collapse diagnostics in the history (module doc); their last-epoch values go to the stage record."""


def cut_statistics(z: torch.Tensor) -> dict[str, float]:
    """Two numbers about the cut-layer activations ``z`` (N samples, then channels first):
    ``dead_channels``, the fraction of channels (dimension 1) that are exactly 0 for every sample and
    position; ``z_std``, the standard deviation over the samples of each unit, averaged over units."""
    per_channel = z.abs().transpose(0, 1).reshape(z.shape[1], -1).amax(dim=1)
    flat = z.reshape(len(z), -1).double()
    return {
        "dead_channels": float((per_channel == 0).double().mean()),
        "z_std": float(flat.std(dim=0, unbiased=False).mean()),
    }


def make_parties(
    spec: RunSpec,
    model: ModelParams,
    split: Split,
    lr: float,
    alpha_task: float,
    seed: int,
    device: str = "cpu",
    distance: str = "euclidean",
    client_optimizer: str = "adam",
    client_lr: float | None = None,
) -> tuple[Client, Server]:
    """A freshly initialised client/server pair (weights from ``seed``) on ``device``; the client's optimiser
    is ``client_optimizer`` at ``client_lr`` (None: ``lr``), the server's Adam at ``lr``."""
    torch.manual_seed(seed)
    client_net, server_net = build_split_model(
        model.arch, model.cut_layer, split.image_shape, split.n_classes, **model.options()
    )
    dev = resolve_device(device)
    client = Client(
        client_net.to(dev),
        lr=lr if client_lr is None else client_lr,
        alpha_dcor=spec.alpha_dcor,
        noise=spec.noise,
        seed=seed,
        distance=distance,
        optimizer=client_optimizer,
    )
    server = Server(server_net.to(dev), lr=lr, alpha_task=alpha_task)
    return client, server


@torch.no_grad()
def evaluate(
    client: Client,
    server: Server,
    split: Split,
    block_size: int = 1024,
    dtype: torch.dtype = torch.float64,
    full: bool = True,
    batch_size: int = 64,
) -> dict[str, float]:
    """Test accuracy and leakage DCOR(X, Z) (V-statistic) on the held-out test set; with ``full``, also
    the bias-corrected dCor^2, the validation part's accuracy and DCOR (what selections use) and the
    per-batch DCOR with its floors at ``batch_size`` and over the whole test set (:mod:`nopeek_repro.floors`).

    The per-epoch history uses ``dtype=float32, full=False`` (a faster curve); final metrics are
    float64. Leakage is computed on the client's device (blocked, so a large test set fits).
    """
    from . import floors

    z = client.activations(split.x_test)
    dev = client.device
    leak = leakage(split.x_test.to(dev), z.to(dev), block_size=block_size, dtype=dtype)
    out = {"test_accuracy": accuracy(server.predict(z), split.y_test), "leakage_dcor": leak["dcor"]}
    if not full:
        return out
    out["leakage_dcor_unbiased"] = leak["dcor_unbiased_sqr"]
    if split.x_val is not None and split.y_val is not None:
        z_val = client.activations(split.x_val)
        out["val_accuracy"] = accuracy(server.predict(z_val), split.y_val)
        out["val_leakage_dcor"] = leakage(split.x_val.to(dev), z_val.to(dev), block_size=block_size)["dcor"]
    out.update(floors.floors(split.x_test, split.y_test, z, split.n_classes, batch_size, block_size))
    return out


CE_DIVERGED = 1e3
"""A batch cross-entropy above this has diverged (chance level is ln(classes): 2.3 for 10 classes)."""


class TrainingDiverged(ParamsError):
    """Training blew up (a non-finite or exploding loss): one message naming the likely settings."""


def _diverged(spec: RunSpec, seed: int, epoch: int, step: int, ce: float, dcor: float, params: TrainParams) -> str:
    culprits = [f"train.lr (now {params.lr:g})"]
    if spec.defence == "nopeek":
        culprits.append(f"nopeek.alpha_dcor (this run: {spec.alpha_dcor:g})")
    if spec.defence == "noise":
        culprits.append(f"noise.scale (this run: {spec.noise:g})")
    return (
        f"{spec.name} seed {seed} diverged at epoch {epoch}, step {step} (cross-entropy {ce:.3g}, DCOR {dcor:.3g}; "
        f"a loss above {CE_DIVERGED:g} or not finite): lower {' or '.join(culprits)}; no result of this run is kept"
    )


def train(
    spec: RunSpec,
    split: Split,
    params: TrainParams,
    model: ModelParams,
    seed: int,
    progress: bool = True,
    distance: str = "euclidean",
) -> Trained:
    """Train one split model of ``spec`` with one seed (the client's DCOR term with ``distance``, see
    :class:`nopeek_repro.split.Client`); see the module doc for what is recorded."""
    set_determinism(seed, params.threads)
    client, server = make_parties(
        spec,
        model,
        split,
        params.lr,
        params.alpha_task,
        seed,
        params.device,
        distance,
        params.client_optimizer,
        params.client_lr,
    )
    schedules = [
        torch.optim.lr_scheduler.MultiStepLR(p.optimizer, milestones=list(params.lr_milestones), gamma=params.lr_gamma)
        for p in (client, server)
    ]
    order = torch.Generator().manual_seed(seed)
    rows = []
    per_epoch = n_batches(len(split.x_train), params.batch_size)
    ramp_steps = params.alpha_ramp * per_epoch
    step_no = 0
    with Progress(params.epochs * per_epoch, f"{spec.name} seed {seed}", "batches", progress) as line:
        for epoch in range(1, params.epochs + 1):
            ce_sum = dcor_sum = 0.0
            seen = 0
            epoch_batches = batches(len(split.x_train), params.batch_size, order)
            for idx in epoch_batches:
                x, y = split.x_train[idx], split.y_train[idx]
                step_no += 1
                if ramp_steps > 0:  # alpha_ramp: the DCOR weight rises linearly to alpha_dcor
                    client.alpha_dcor = spec.alpha_dcor * min(1.0, step_no / ramp_steps)
                z = client.forward(x)  # client -> server: activations only
                grad_z = server.train_step(z, y)  # server -> client: gradient only
                step = client.backward(grad_z, diagnose=seen == len(epoch_batches) - 1)
                ce = server.last.loss / params.alpha_task
                if not math.isfinite(ce) or not math.isfinite(step.dcor) or ce > CE_DIVERGED:
                    raise TrainingDiverged(_diverged(spec, seed, epoch, step_no, ce, step.dcor, params))
                ce_sum += ce
                dcor_sum += step.dcor
                seen += 1
                line.update(1, epoch=f"{epoch}/{params.epochs}", ce=ce_sum / seen, dcor=dcor_sum / seen)
            for schedule in schedules:
                schedule.step()
            ev = evaluate(client, server, split, dtype=torch.float32, full=False)
            probe = split.x_val if split.x_val is not None else split.x_test
            rows.append(
                {
                    "epoch": epoch,
                    "train_ce": ce_sum / seen,
                    "train_dcor": dcor_sum / seen,
                    "test_accuracy": ev["test_accuracy"],
                    "test_dcor": ev["leakage_dcor"],
                    **cut_statistics(client.clean_activations(probe)),
                    "grad_ratio": step.grad_dcor / step.grad_task if step.grad_task > 0 else float("nan"),
                }
            )
            line.note(test_acc=f"{ev['test_accuracy']:.3f}", test_dcor=f"{ev['leakage_dcor']:.4f}")
            log.debug("%s seed %d epoch %d: %s", spec.name, seed, epoch, rows[-1])
    return Trained(spec, seed, model, client, server, pd.DataFrame(rows), params.batch_size)


def save(trained: Trained, folder: Path) -> None:
    """Write ``client.pt``, ``server.pt``, ``history.csv`` and ``run.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(trained.client.net.state_dict(), folder / "client.pt")
    torch.save(trained.server.net.state_dict(), folder / "server.pt")
    trained.history.to_csv(folder / "history.csv", index=False, float_format="%.6g")
    run = {
        "name": trained.spec.name,
        "defence": trained.spec.defence,
        "alpha_dcor": trained.spec.alpha_dcor,
        "noise": trained.spec.noise,
        "seed": trained.seed,
        "model": trained.model.model_dump(),
        "distance": trained.client.distance,
        "batch_size": trained.batch_size,
    }
    (folder / "run.json").write_text(json.dumps(run, indent=1) + "\n")


def load(folder: Path, split: Split, params: TrainParams) -> Trained:
    """Rebuild a trained client/server pair saved by :func:`save`."""
    if not (folder / "run.json").is_file():
        raise FileNotFoundError(f"{folder}: no trained model here; run its training stage first")
    run = json.loads((folder / "run.json").read_text())
    spec = RunSpec(run["defence"], alpha_dcor=run["alpha_dcor"], noise=run["noise"])
    model = ModelParams(**run["model"])
    client, server = make_parties(spec, model, split, params.lr, params.alpha_task, run["seed"], params.device)
    client.net.load_state_dict(load_weights(folder / "client.pt", client.device))
    server.net.load_state_dict(load_weights(folder / "server.pt", server.device))
    return Trained(spec, run["seed"], model, client, server, pd.read_csv(folder / "history.csv"), run.get("batch_size"))


def estimate_seconds(
    split: Split, params: TrainParams, model: ModelParams, n_models: int, device: str = "cpu", steps: int = 3
) -> float:
    """Rough run time of training ``n_models`` models x seeds x epochs, from timing a few real NoPeek steps now."""
    import time

    set_determinism(0, params.threads)
    client, server = make_parties(
        RunSpec("nopeek", alpha_dcor=1.0), model, split, params.lr, params.alpha_task, 0, device
    )
    n = min(params.batch_size, len(split.x_train))
    x, y = split.x_train[:n], split.y_train[:n]
    client.backward(server.train_step(client.forward(x), y))  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        client.backward(server.train_step(client.forward(x), y))
    per_step = (time.perf_counter() - start) / steps
    steps_per_epoch = max(1, len(split.x_train) // params.batch_size)
    return per_step * steps_per_epoch * params.epochs * len(params.seeds) * n_models
