"""Split learning over a real wire: the server and the clients as processes on ``torch.distributed``.

The parties of :mod:`nopeek_repro.split` (:class:`~nopeek_repro.split.Client`,
:class:`~nopeek_repro.split.Server`, built by :func:`nopeek_repro.train.make_parties`) run in
separate processes and exchange tensors with point-to-point ``send``/``recv`` only: gloo, tensors
through the CPU, for ``--device cpu`` or ``auto`` (a party may compute on its GPU); NCCL, GPU to GPU,
for ``--device cuda`` on every party (one GPU per process: ``LOCAL_RANK`` picks it). Rank 0 is the
**server**: it holds the server's layers and the **label vector of the training part** (in split
learning the server is the label owner; it never holds an image). Ranks 1..k are the **clients**:
client c holds the images of its shard of the training part (contiguous chunk c of k,
``torch.arange(n_train).tensor_split(k)``) and the layers up to the cut, with its own NoPeek DCOR
term. In this kit every process reads the same prepared split and then drops what its party does not
own: the server keeps ``y_train`` only, a client the images of its shard only.

Batch order: every party derives it from the seed alone, exactly as :func:`nopeek_repro.train.train`
(a ``torch.Generator`` seeded with the seed; per epoch, for client 1..k in turn,
:func:`nopeek_repro.runtime.batches` over that client's shard). No index tensor crosses: the server
knows which rows of its label vector a step uses. With one client this is the in-process loop step
for step, and a CPU run gives bitwise the same weights and per-epoch ``train_ce``/``train_dcor``.

Protocol (global step t = 1, 2, ..., T; client c owns step t)::

    c -> 0  header  int64[8]: [t, dtype code, ndim, d0 (= batch size b), d1, d2, d3, d4]
                     (shape of Z, unused trailing dims 0; dtype codes: 0 float32, 1 float64,
                     2 float16, 3 bfloat16). Framing: 64 bytes a step.
    c -> 0  Z       the cut-layer activations, dtype and shape from the header, e.g. float32
                     (b, 32, 7, 7) for the default cnn cut at block2 (noise added by the client under
                     the uniform-noise defence). The only data tensor the client sends.
    0 -> c  dL/dZ   same dtype and shape as Z: alpha_task * d CE / dZ, computed by the server after its
                     own update. The client then updates with it and its own alpha_dcor * DCOR term.

Several clients (k >= 2) take turns **epoch by epoch** (classic split learning): in each epoch
client 1 runs all the batches of its shard, then client 2, ..., then client k; one server serves them
all. ``handover``:

* ``relay``: after its turn a client sends its client weights to the client of the next turn
  (``state_dict`` tensors in order, their dtypes and shapes known to both: same architecture),
  which loads them before its turn; after the last turn the last client sends its weights to every
  other client, so all end with the same weights. Only the weights travel; each client keeps its own
  optimiser state (Adam moments, learning-rate schedule). Counted as ``handover`` bytes.
* ``none``: each client keeps its own weights (all start from the seed's initial weights).

After training each client sends the server one float64 ``[epochs, len(REPORT_FIELDS)]`` tensor of its
per-epoch counters (its DCOR sum, its measured bytes and seconds; :data:`REPORT_FIELDS`) so that the
server can print the whole table: counted as ``report`` bytes, apart from the training traffic.

What crossed (:func:`run_local`'s ``traffic``, printed by the CLI), per epoch, measured at the sender
or receiver of each message: ``z_bytes`` and ``header_bytes`` (client -> server), ``grad_bytes``
(server -> client), ``handover_bytes`` (client -> client), ``messages`` (every training message any
party sent), and time: ``*_comm_s`` is time blocked in send/recv (waiting for the peer included),
``*_compute_s`` time in the parties' forward/backward/update, ``wall_s`` the server's epoch.
:func:`expected_bytes` gives the same numbers from the formula.

Faults: a party that dies makes the others exit within a bounded time with one message naming it,
e.g. ``wire: the server (rank 0) stopped answering ...`` or ``wire: client 1 (rank 1) stopped
answering ...``: a crashed peer closes its connections, and the blocked send/recv fails at once; a
peer that hangs (or a machine that drops off the network) stops its heartbeat (a counter in the
rendezvous store, every ``timeout / 10`` s, at most 1 s) and is declared lost after ``timeout``
seconds (default 30). A bad address, a port in use, or parties that never join give one message too.
A training step that diverges (:class:`nopeek_repro.train.TrainingDiverged`) stops the party that
sees it (the server: cross-entropy; a client: DCOR) with that message; the others then report it as
stopped answering. Blocking calls run with a 24 h backstop timeout only: a client may legitimately
wait a long time for its turn, which the heartbeat, not the timeout, keeps bounded. (torchrun's agent
also stops the other workers of its machine once one fails; across machines each party relies on the
above.)

Run it (one machine: K clients, K + 1 processes)::

    torchrun --nproc-per-node 3 -m nopeek_repro.wire --clients 2 --epochs 2 --seed 0 --n-train 1024

Two machines: the server (rank 0) on machine A at 10.0.0.1, K = 2 clients on machine B (torchrun
numbers the ranks node by node, so node 0's single process is rank 0; the agents may run different
``--nproc-per-node``; checked on one machine with two agents and ``--master-addr 127.0.0.1``)::

    # on A: the server
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 1 --master-addr 10.0.0.1 --master-port 29500 \\
        -m nopeek_repro.wire --clients 2 --epochs 2 --seed 0 --n-train 1024
    # on B: clients 1 and 2
    torchrun --nnodes 2 --node-rank 1 --nproc-per-node 2 --master-addr 10.0.0.1 --master-port 29500 \\
        -m nopeek_repro.wire --clients 2 --epochs 2 --seed 0 --n-train 1024

Every party must get the same arguments. The rendezvous is torch's own ``env://`` (``MASTER_ADDR``,
``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, which torchrun sets; plain processes may set them
themselves). Rank 0 prints the history and the traffic table. :func:`run_local` starts the K + 1
processes on localhost itself (plain processes with those variables, or torchrun) and gathers their
results in the calling process.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before torch loads: c10d's own C++ log lines would bury the one clear message
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Literal  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import Tensor  # noqa: E402

from . import config, data, models, runtime, train  # noqa: E402
from .config import ModelParams, TrainParams  # noqa: E402
from .data import Split  # noqa: E402
from .defences import RunSpec  # noqa: E402
from .split import Client, Server  # noqa: E402

log = logging.getLogger(__name__)

HANDOVERS: tuple[str, ...] = ("relay", "none")

HEADER_FIELDS = 8
"""int64 entries of the header sent before each Z: step, dtype code, ndim, then up to 5 dimensions."""
HEADER_BYTES = HEADER_FIELDS * 8
MAX_DIMS = HEADER_FIELDS - 3
DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
"""The header's dtype codes (the index here)."""

REPORT_FIELDS = (
    "steps",
    "dcor_sum",
    "z_bytes",
    "header_bytes",
    "grad_bytes",
    "handover_sent",
    "handover_recv",
    "messages",
    "comm_s",
    "compute_s",
    "wall_s",
)
"""A party's per-epoch counters, in the order of the report tensor a client sends the server at the end."""

OP_TIMEOUT = timedelta(hours=24)
"""Backstop on each send/recv; liveness is the heartbeat's job (module doc)."""

DEFAULT_TIMEOUT_S = 30.0


class WireError(RuntimeError):
    """A party lost its peer, or could not meet it: one message naming the party (module doc)."""


def party(rank: int) -> str:
    """How messages name a party: ``the server (rank 0)``, ``client 2 (rank 2)``."""
    return "the server (rank 0)" if rank == 0 else f"client {rank} (rank {rank})"


def _cause(err: BaseException) -> str:
    """The first line of torch's error, without its source location and advice."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    text = text.split(". This is typically")[0]
    return text[:160]


# --------------------------------------------------------------------------------------------
# What crosses: the header, the schedule, the formula
# --------------------------------------------------------------------------------------------


def encode_header(step: int, z: Tensor) -> Tensor:
    """The int64[8] header that precedes Z: ``[step, dtype code, ndim, *shape, 0...]``."""
    if z.dtype not in DTYPES:
        raise ValueError(f"Z of dtype {z.dtype} cannot cross: allowed {', '.join(map(str, DTYPES))}")
    if not 1 <= z.dim() <= MAX_DIMS:
        raise ValueError(f"Z has {z.dim()} dimensions; the header carries 1..{MAX_DIMS}")
    shape = list(z.shape) + [0] * (MAX_DIMS - z.dim())
    return torch.tensor([step, DTYPES.index(z.dtype), z.dim(), *shape], dtype=torch.int64)


def decode_header(header: Tensor) -> tuple[int, torch.dtype, tuple[int, ...]]:
    """``(step, dtype, shape)`` from a header (inverse of :func:`encode_header`)."""
    h = [int(v) for v in header.cpu().tolist()]
    if len(h) != HEADER_FIELDS or not 0 <= h[1] < len(DTYPES) or not 1 <= h[2] <= MAX_DIMS:
        raise WireError(f"wire: malformed header {h}")
    return h[0], DTYPES[h[1]], tuple(h[3 : 3 + h[2]])


def shards(n_train: int, clients: int) -> list[Tensor]:
    """The rows of the training part each client holds: contiguous chunks, client c gets chunk c - 1."""
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    if n_train < 2 * clients:
        raise ValueError(f"{n_train} training rows cannot give {clients} clients 2 rows each (DCOR needs 2)")
    return list(torch.arange(n_train).tensor_split(clients))


def epoch_plan(parts: Sequence[Tensor], batch_size: int, order: torch.Generator) -> list[list[Tensor]]:
    """One epoch's batches, per client in turn (positions within its shard), drawn from ``order``:
    for one client, exactly :func:`nopeek_repro.runtime.batches` as :func:`nopeek_repro.train.train` draws it."""
    return [runtime.batches(len(p), batch_size, order) for p in parts]


def steps_per_epoch(n_train: int, clients: int, batch_size: int) -> int:
    """Steps in one epoch, all clients together."""
    return sum(runtime.n_batches(len(p), batch_size) for p in shards(n_train, clients))


def handovers(clients: int, epochs: int, handover: str) -> list[tuple[int, int, int]]:
    """The weight hand-overs of a run, in order, as ``(epoch, from client, to client)``."""
    if handover not in HANDOVERS:
        raise ValueError(f"handover must be one of {', '.join(HANDOVERS)}, got {handover!r}")
    if handover == "none" or clients == 1:
        return []
    turns = [(e, c) for e in range(1, epochs + 1) for c in range(1, clients + 1)]
    out = [(e, c, turns[i + 1][1]) for i, (e, c) in enumerate(turns[:-1])]
    last = turns[-1][1]
    return out + [(epochs, last, c) for c in range(1, clients + 1) if c != last]


def expected_bytes(
    z_shape: Sequence[int],
    n_train: int,
    batch_size: int,
    epochs: int = 1,
    clients: int = 1,
    handover: str = "none",
    state_bytes: int = 0,
    state_tensors: int = 0,
    element_size: int = 4,
) -> dict[str, int]:
    """What a run sends, from the formula (totals over the run; the same keys as the traffic table).

    Each way, per step of batch b: ``prod(z_shape) * element_size * b`` bytes (Z up, dL/dZ down), so
    per epoch ``prod(z_shape) * element_size * (rows trained)``, the rows being each shard less a
    dropped last batch of 1; plus a :data:`HEADER_BYTES` header up per step; plus, with ``relay``,
    ``state_bytes`` (the client's ``state_dict``, :func:`client_state_size`) per hand-over
    (:func:`handovers`). ``messages``: 3 per step plus ``state_tensors`` per hand-over.
    """
    parts = shards(n_train, clients)
    rows = sum(len(p) - (1 if len(p) % batch_size == 1 else 0) for p in parts) * epochs
    steps = steps_per_epoch(n_train, clients, batch_size) * epochs
    per_row = math.prod(z_shape) * element_size
    n_hand = len(handovers(clients, epochs, handover))
    return {
        "steps": steps,
        "z_bytes": per_row * rows,
        "header_bytes": HEADER_BYTES * steps,
        "grad_bytes": per_row * rows,
        "handover_bytes": state_bytes * n_hand,
        "messages": 3 * steps + state_tensors * n_hand,
    }


def z_shape(model: ModelParams, image_shape: tuple[int, int, int], n_classes: int) -> tuple[int, ...]:
    """One sample's cut-layer activation shape for ``model`` on images of ``image_shape``."""
    client_net, _ = models.build_split_model(model.arch, model.cut_layer, image_shape, n_classes, **model.options())
    return models.activation_shape(client_net, image_shape)


def client_state_size(model: ModelParams, image_shape: tuple[int, int, int], n_classes: int) -> tuple[int, int]:
    """``(bytes, tensors)`` of the client's ``state_dict``: what one relay hand-over sends."""
    client_net, _ = models.build_split_model(model.arch, model.cut_layer, image_shape, n_classes, **model.options())
    state = client_net.state_dict()
    return sum(t.numel() * t.element_size() for t in state.values()), len(state)


# --------------------------------------------------------------------------------------------
# One party
# --------------------------------------------------------------------------------------------


@dataclass
class EpochStats:
    """One party's counters for one epoch (:data:`REPORT_FIELDS`)."""

    steps: int = 0
    dcor_sum: float = 0.0
    z_bytes: int = 0
    header_bytes: int = 0
    grad_bytes: int = 0
    handover_sent: int = 0
    handover_recv: int = 0
    messages: int = 0  # sent by this party
    comm_s: float = 0.0
    compute_s: float = 0.0
    wall_s: float = 0.0
    ce_sum: float = 0.0  # the server's only

    def row(self) -> list[float]:
        return [float(getattr(self, f)) for f in REPORT_FIELDS]


@dataclass
class Job:
    """Everything a party needs; all parties of a run get the same job."""

    spec: RunSpec
    params: TrainParams
    model: ModelParams
    seed: int = 0
    clients: int = 1
    handover: str = "relay"
    timeout: float = DEFAULT_TIMEOUT_S
    distance: str = "euclidean"
    split_file: str | None = None  # a prepared split (.npz, data.save_split) or a training part (.pt, run_local)
    n_train: int | None = 1024  # without split_file: the embedded MNIST sample, split as the test fixture
    n_test: int | None = 256
    test_fraction: float = 0.2
    split_seed: int = 0
    out: str | None = None  # folder for rank<r>.pt (weights, counters; rank 0 also the tables)
    die_at: tuple[int, int] | None = None  # tests: (rank, step) SIGKILLs itself at that step
    stop_at: tuple[int, int] | None = None  # tests: (rank, step) SIGSTOPs itself (hangs) at that step

    def to_json(self) -> str:
        d = asdict(self)
        d["spec"] = asdict(self.spec)
        d["params"] = self.params.model_dump(mode="json")
        d["model"] = self.model.model_dump(mode="json")
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> Job:
        d = json.loads(text)
        d["spec"] = RunSpec(**d["spec"])
        d["params"] = TrainParams(**d["params"])
        d["model"] = ModelParams(**d["model"])
        for k in ("die_at", "stop_at"):
            d[k] = tuple(d[k]) if d[k] is not None else None
        return cls(**d)

    def load_split(self) -> Split:
        if self.split_file is None:
            return data.prepare(data.sample_source(), self.test_fraction, self.split_seed, self.n_train, self.n_test)
        path = Path(self.split_file)
        if path.suffix == ".npz":
            return data.load_split(path)
        return _load_training_part(path)


def _save_training_part(split: Split, path: Path) -> None:
    """What the parties need of ``split`` (exact tensors, unlike the uint8 .npz): the training part, the classes."""
    torch.save({"x_train": split.x_train, "y_train": split.y_train, "n_classes": split.n_classes}, path)


def _load_training_part(path: Path) -> Split:
    d = torch.load(path, weights_only=True)
    x, y = d["x_train"], d["y_train"]
    return Split(
        x,
        y,
        torch.zeros((0, *x.shape[1:])),
        torch.zeros(0, dtype=torch.int64),
        np.arange(len(y)),
        np.arange(0),
        classes=tuple(str(i) for i in range(int(d["n_classes"]))),
    )


class _Watchdog:
    """The heartbeat: a thread bumps this party's counter in the rendezvous store every ``interval`` and
    ends the process, with one message, when a peer's counter stands still for ``timeout`` seconds or the
    store is gone; a second thread ends it when the store itself stops answering for ``timeout`` seconds
    (a hung store blocks the first thread's calls)."""

    def __init__(self, store: Any, rank: int, world: int, timeout: float) -> None:
        self.store, self.rank, self.world, self.timeout = store, rank, world, timeout
        self.interval = min(1.0, timeout / 10)
        self.halt = threading.Event()
        self.final = False  # set before the last message: the server (and its store) may then leave at any time
        self.quiet = False  # the store left after `final`: nothing more to watch
        self.last_ok = time.monotonic()
        # the store lives in the server's process (plain processes) or with torchrun's agent on node 0
        self.store_owner = party(0) if rank != 0 else "the rendezvous store"

    def start(self) -> None:
        for target in (self._beat, self._monitor):
            threading.Thread(target=target, name=f"wire-{target.__name__[1:]}-{self.rank}", daemon=True).start()

    def stop(self) -> None:
        self.halt.set()

    def done(self) -> None:
        """This party finished: tell the others (they stop watching it), then stop watching."""
        try:
            self.store.add(f"wire/done/{self.rank}", 1)
        except Exception:  # noqa: BLE001 - the store's host may have left already: nothing to tell
            pass
        self.halt.set()

    def _beat(self) -> None:
        peers = [r for r in range(self.world) if r != self.rank]
        seen = {r: -1 for r in peers}
        since = {r: time.monotonic() for r in peers}
        finished: set[int] = set()
        while not self.halt.wait(self.interval):
            try:
                self.store.add(f"wire/beat/{self.rank}", 1)
                for r in peers:
                    if r in finished:
                        continue
                    if self.store.add(f"wire/done/{r}", 0):
                        finished.add(r)
                        continue
                    beat = self.store.add(f"wire/beat/{r}", 0)
                    now = time.monotonic()
                    if beat != seen[r]:
                        seen[r], since[r] = beat, now
                    elif now - since[r] > self.timeout and not self.halt.is_set():
                        _fatal(f"wire: {party(r)} stopped answering (no heartbeat for {self.timeout:g} s)")
                self.last_ok = time.monotonic()
            except Exception as err:  # noqa: BLE001 - the store (hosted with the server) is gone
                if self.halt.is_set() or self.final:
                    self.quiet = True
                    return
                _fatal(f"wire: {self.store_owner} stopped answering (rendezvous store: {_cause(err)})")

    def _monitor(self) -> None:
        while not self.halt.wait(self.interval):
            silent = time.monotonic() - self.last_ok
            if silent > self.timeout + self.interval and not self.quiet and not self.halt.is_set():
                _fatal(f"wire: {self.store_owner} stopped answering (its rendezvous store silent for {silent:.0f} s)")


def _fatal(message: str) -> None:
    """End this process at once with ``message`` (a thread cannot interrupt a blocked send/recv otherwise)."""
    log.error("%s", message)
    for h in [*logging.getLogger().handlers, *log.handlers]:
        h.flush()
    sys.stderr.flush()
    os._exit(1)


class Party:
    """One process of a run: the server (rank 0) or client ``rank``; :meth:`run` trains and returns its results."""

    def __init__(self, job: Job, rank: int, world: int) -> None:
        if world != job.clients + 1:
            raise WireError(
                f"wire: WORLD_SIZE = {world}, but --clients {job.clients} needs {job.clients + 1} processes "
                f"(one server and {job.clients} clients: torchrun --nproc-per-node {job.clients + 1})"
            )
        if not 0 <= rank < world:
            raise WireError(f"wire: RANK = {rank} is not in 0..{world - 1}")
        self.job, self.rank, self.world = job, rank, world
        self.epoch = 0
        self.stats: list[EpochStats] = []
        self.watchdog: _Watchdog | None = None
        self.device = torch.device("cpu")
        self.wire_device = torch.device("cpu")
        self.backend = "gloo"

    # ---- the wire -----------------------------------------------------------------------

    @property
    def now(self) -> EpochStats:
        return self.stats[-1]

    def connect(self) -> None:
        """Meet the other parties (torch's env:// rendezvous) and start the heartbeat."""
        job = self.job
        addr, port = os.environ.get("MASTER_ADDR", "?"), os.environ.get("MASTER_PORT", "?")
        if job.params.device == "cuda":
            self.backend = "nccl"
            if not torch.cuda.is_available():
                raise WireError(f"wire: {party(self.rank)}: train.device = 'cuda' but no CUDA device here")
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
            self.wire_device = torch.device("cuda", torch.cuda.current_device())
        limit = 2 * job.timeout + 5  # torch's own errors come first; this bounds a rendezvous that hangs
        guard = threading.Timer(
            limit,
            _fatal,
            (
                f"wire: the rendezvous at {addr}:{port} did not complete within {limit:g} s: is that the server's "
                f"address and port, and are all {self.world} parties started?",
            ),
        )
        guard.daemon = True
        guard.start()
        try:
            dist.init_process_group(
                self.backend,
                init_method="env://",
                rank=self.rank,
                world_size=self.world,
                timeout=timedelta(seconds=job.timeout),
            )
        except Exception as err:  # noqa: BLE001 - torch's rendezvous errors: one message each
            text = str(err)
            if "EADDRINUSE" in text or "address already in use" in text.lower():
                raise WireError(
                    f"wire: port {port} is already in use on this machine (another run or program holds it): "
                    "choose another --master-port / MASTER_PORT"
                ) from None
            joined = re.search(r"(\d+)/(\d+) clients joined", text)
            if joined:
                raise WireError(
                    f"wire: only {joined.group(1)} of {self.world} parties joined the rendezvous at {addr}:{port} "
                    f"within {job.timeout:g} s: start all {self.world} (one server, {job.clients} clients) with the "
                    "same address, port and arguments"
                ) from None
            if "connect" in text or "timed out" in text.lower() or "resolve" in text.lower():
                raise WireError(
                    f"wire: could not reach the rendezvous at {addr}:{port} within {job.timeout:g} s "
                    "(MASTER_ADDR / MASTER_PORT, torchrun --master-addr / --master-port): is the address right, "
                    "and is the server (rank 0) started?"
                ) from None
            raise WireError(f"wire: the rendezvous at {addr}:{port} failed: {_cause(err)}") from None
        finally:
            guard.cancel()
        default_store = getattr(dist.distributed_c10d, "_get_default_store", None)  # torch's own, private
        if default_store is None:  # pragma: no cover - another torch: crashes are still caught, hangs are not
            log.warning(
                "wire: no rendezvous store to beat on in torch %s: a hung peer is not detected", torch.__version__
            )
            return
        self.watchdog = _Watchdog(default_store(), self.rank, self.world, job.timeout)
        self.watchdog.start()

    def _op(self, what: str, peer: int, t: Tensor, send: bool) -> None:
        start = time.perf_counter()
        try:
            work = dist.isend(t, peer) if send else dist.irecv(t, peer)
            assert work is not None
            work.wait(OP_TIMEOUT)
            if self.wire_device.type == "cuda":
                torch.cuda.synchronize(self.wire_device)
        except Exception as err:  # noqa: BLE001 - gloo/NCCL: the peer's connection closed or timed out
            raise WireError(
                f"wire: {party(peer)} stopped answering ({what}, epoch {self.epoch}: {_cause(err)})"
            ) from None
        self.now.comm_s += time.perf_counter() - start
        if send:
            self.now.messages += 1

    def send(self, t: Tensor, peer: int, what: str) -> int:
        """Send ``t`` (moved to the wire's device, contiguous); returns its bytes."""
        t = t.detach().to(self.wire_device).contiguous()
        self._op(f"sending {what}", peer, t, send=True)
        return t.numel() * t.element_size()

    def recv(self, shape: Sequence[int], dtype: torch.dtype, peer: int, what: str) -> tuple[Tensor, int]:
        """Receive a tensor of known ``shape`` and ``dtype``; returns it and its bytes."""
        t = torch.empty(tuple(shape), dtype=dtype, device=self.wire_device)
        self._op(f"waiting for {what}", peer, t, send=False)
        return t, t.numel() * t.element_size()

    def _inject(self, step: int) -> None:
        """Tests only: die (SIGKILL) or hang (SIGSTOP) at ``step`` (Job.die_at / stop_at)."""
        for target, sig, verb in (
            (self.job.die_at, signal.SIGKILL, "dying"),
            (self.job.stop_at, signal.SIGSTOP, "hanging"),
        ):
            if target is not None and tuple(target) == (self.rank, step):
                log.warning("wire: %s %s at step %d (test)", party(self.rank), verb, step)
                sys.stderr.flush()
                os.kill(os.getpid(), sig)

    # ---- training -----------------------------------------------------------------------

    def _setup(self) -> tuple[Split, Client, Server, list[Any]]:
        job, p = self.job, self.job.params
        runtime.set_determinism(job.seed, p.threads)
        split = job.load_split()
        client, server = train.make_parties(
            job.spec,
            job.model,
            split,
            p.lr,
            p.alpha_task,
            job.seed,
            p.device,
            job.distance,
            p.client_optimizer,
            p.client_lr,
        )
        mine = server if self.rank == 0 else client
        self.device = mine.device
        schedule = torch.optim.lr_scheduler.MultiStepLR(
            mine.optimizer, milestones=list(p.lr_milestones), gamma=p.lr_gamma
        )
        return split, client, server, [schedule]

    def run(self) -> dict[str, Any]:
        """Train (the protocol of the module doc); returns this party's results (also written to ``job.out``)."""
        split, client, server, schedules = self._setup()
        n_train = len(split.y_train)
        parts = shards(n_train, self.job.clients)
        if self.rank == 0:
            labels = split.y_train.clone()  # the label owner keeps the labels of the training part, no image
            del split
            out = self._serve(server, labels, parts, schedules)
        else:
            images = split.x_train[parts[self.rank - 1]]  # this client's shard of images, no label
            del split
            out = self._train_client(client, images, parts, schedules)
        if self.job.out:
            folder = Path(self.job.out)
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(out, folder / f"rank{self.rank}.pt")
        return out

    def _serve(self, server: Server, labels: Tensor, parts: list[Tensor], schedules: list[Any]) -> dict[str, Any]:
        """The server's loop: it owns the training part's ``labels`` (no image) and picks the rows of each
        step from the seeded plan; per step: receive the header and Z, update, send dL/dZ."""
        job, p = self.job, self.job.params
        order = torch.Generator().manual_seed(job.seed)
        step_no = 0
        history = []
        for epoch in range(1, p.epochs + 1):
            self.epoch = epoch
            self.stats.append(EpochStats())
            start = time.perf_counter()
            for c, turn in enumerate(epoch_plan(parts, p.batch_size, order), 1):
                for idx in turn:
                    step_no += 1
                    self._inject(step_no)
                    header, n = self.recv((HEADER_FIELDS,), torch.int64, c, f"the header of step {step_no}")
                    self.now.header_bytes += n
                    step, dtype, shape = decode_header(header)
                    if step != step_no or shape[0] != len(idx):
                        raise WireError(
                            f"wire: {party(c)} is out of step: sent step {step} with {shape[0]} rows, the server "
                            f"expected step {step_no} with {len(idx)} (are all parties given the same arguments?)"
                        )
                    z, n = self.recv(shape, dtype, c, f"Z of step {step_no}")
                    self.now.z_bytes += n
                    t0 = time.perf_counter()
                    grad = server.train_step(z, labels[parts[c - 1][idx]])
                    self.now.compute_s += time.perf_counter() - t0
                    self.now.grad_bytes += self.send(grad, c, f"dL/dZ of step {step_no}")
                    ce = server.last.loss / p.alpha_task
                    if not math.isfinite(ce) or ce > train.CE_DIVERGED:
                        raise train.TrainingDiverged(
                            train._diverged(job.spec, job.seed, epoch, step_no, ce, float("nan"), p)
                        )
                    self.now.ce_sum += ce
                    self.now.steps += 1
            for s in schedules:
                s.step()
            self.now.wall_s = time.perf_counter() - start
        # the clients' counters (after training: not part of its traffic)
        if self.watchdog is not None:
            self.watchdog.final = True
        reports = []
        report_bytes = 0
        self.stats.append(EpochStats())  # the report messages' own counters, not an epoch
        for c in range(1, job.clients + 1):
            r, n = self.recv((p.epochs, len(REPORT_FIELDS)), torch.float64, c, "the final report")
            reports.append(r.cpu())
            report_bytes += n
        self.stats.pop()
        if self.watchdog is not None:
            self.watchdog.done()
        client_stats = [
            [dict(zip(("epoch", *REPORT_FIELDS), (e + 1, *row))) for e, row in enumerate(r.tolist())] for r in reports
        ]
        traffic = []
        for e, s in enumerate(self.stats):
            cl = [cs[e] for cs in client_stats]
            dcor_sum = sum(row["dcor_sum"] for row in cl)
            history.append({"epoch": e + 1, "train_ce": s.ce_sum / s.steps, "train_dcor": dcor_sum / s.steps})
            traffic.append(
                {
                    "epoch": e + 1,
                    "steps": s.steps,
                    "z_bytes": s.z_bytes,
                    "header_bytes": s.header_bytes,
                    "grad_bytes": s.grad_bytes,
                    "handover_bytes": int(sum(row["handover_sent"] for row in cl)),
                    "bytes_up": s.z_bytes + s.header_bytes,
                    "bytes_down": s.grad_bytes,
                    "messages": s.messages + int(sum(row["messages"] for row in cl)),
                    "server_comm_s": s.comm_s,
                    "server_compute_s": s.compute_s,
                    "clients_comm_s": sum(row["comm_s"] for row in cl),
                    "clients_compute_s": sum(row["compute_s"] for row in cl),
                    "wall_s": s.wall_s,
                }
            )
        return {
            "role": "server",
            "rank": 0,
            "state": {k: v.cpu() for k, v in server.net.state_dict().items()},
            "history": history,
            "traffic": traffic,
            "client_stats": client_stats,
            "report_bytes": report_bytes,
        }

    def _handover(self, client: Client, peer: int, send: bool) -> None:
        state = client.net.state_dict()
        for name, t in state.items():
            if send:
                self.now.handover_sent += self.send(t, peer, f"the hand-over ({name})")
            else:
                got, n = self.recv(t.shape, t.dtype, peer, f"the hand-over ({name})")
                with torch.no_grad():
                    t.copy_(got.to(t.device))
                self.now.handover_recv += n

    def _train_client(
        self, client: Client, images: Tensor, parts: list[Tensor], schedules: list[Any]
    ) -> dict[str, Any]:
        """Client ``rank``'s loop over its turns: it owns the ``images`` of its shard (no label); per step:
        forward, send the header and Z, receive dL/dZ, update with it and its own DCOR term."""
        job, p, me = self.job, self.job.params, self.rank
        order = torch.Generator().manual_seed(job.seed)
        ramp_steps = p.alpha_ramp * steps_per_epoch(sum(len(q) for q in parts), job.clients, p.batch_size)
        relay = job.handover == "relay" and job.clients > 1
        turns = [(e, c) for e in range(1, p.epochs + 1) for c in range(1, job.clients + 1)]
        step_no = 0
        for epoch in range(1, p.epochs + 1):
            self.epoch = epoch
            self.stats.append(EpochStats())
            start = time.perf_counter()
            for c, turn in enumerate(epoch_plan(parts, p.batch_size, order), 1):
                if c != me:
                    step_no += len(turn)  # another client's turn: only the step count moves on
                    continue
                i = turns.index((epoch, me))
                if relay and i > 0:  # the weights of the turn before
                    self._handover(client, turns[i - 1][1], send=False)
                for j, idx in enumerate(turn):
                    step_no += 1
                    self._inject(step_no)
                    if ramp_steps > 0:  # alpha_ramp, as train.train, over the run's global steps
                        client.alpha_dcor = job.spec.alpha_dcor * min(1.0, step_no / ramp_steps)
                    t0 = time.perf_counter()
                    z = client.forward(images[idx])  # client -> server: activations only
                    self.now.compute_s += time.perf_counter() - t0
                    self.now.header_bytes += self.send(encode_header(step_no, z), 0, f"the header of step {step_no}")
                    self.now.z_bytes += self.send(z, 0, f"Z of step {step_no}")
                    grad, n = self.recv(z.shape, z.dtype, 0, f"dL/dZ of step {step_no}")
                    self.now.grad_bytes += n
                    t0 = time.perf_counter()
                    st = client.backward(grad.to(self.device), diagnose=j == len(turn) - 1)
                    self.now.compute_s += time.perf_counter() - t0
                    if not math.isfinite(st.dcor):
                        raise train.TrainingDiverged(
                            train._diverged(job.spec, job.seed, epoch, step_no, float("nan"), st.dcor, p)
                        )
                    self.now.dcor_sum += st.dcor
                    self.now.steps += 1
                if relay and i + 1 < len(turns):  # to the client of the next turn
                    self._handover(client, turns[i + 1][1], send=True)
            if relay and epoch == p.epochs:  # the last client gives its final weights to every other client
                last = turns[-1][1]
                for other in range(1, job.clients + 1):
                    if me == last and other != last:
                        self._handover(client, other, send=True)
                    elif me == other and other != last:
                        self._handover(client, last, send=False)
            for s in schedules:
                s.step()
            self.now.wall_s = time.perf_counter() - start
        if self.watchdog is not None:
            self.watchdog.final = True
        report = torch.tensor([s.row() for s in self.stats], dtype=torch.float64)
        self.stats.append(EpochStats())  # the report's own counters, not an epoch
        self.send(report, 0, "the final report")
        self.stats.pop()
        if self.watchdog is not None:
            self.watchdog.done()
        return {
            "role": "client",
            "rank": me,
            "state": {k: v.cpu() for k, v in client.net.state_dict().items()},
            "stats": [dict(zip(("epoch", *REPORT_FIELDS), (e + 1, *s.row()))) for e, s in enumerate(self.stats)],
        }

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        if dist.is_initialized():
            dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# Running a whole run on localhost, and the results
# --------------------------------------------------------------------------------------------


@dataclass
class WireResult:
    """A finished run, gathered in one process: the weights of every party and what crossed."""

    server: dict[str, Tensor]  # the server's state_dict
    clients: list[dict[str, Tensor]]  # client 1..k's state_dicts
    history: pd.DataFrame  # epoch, train_ce, train_dcor (as train.train's history)
    traffic: pd.DataFrame  # per epoch: bytes each way, messages, seconds (module doc)
    client_stats: list[pd.DataFrame]  # each client's own counters per epoch (REPORT_FIELDS)
    report_bytes: int  # the final reports, client -> server, apart from the training traffic
    out: Path | None  # the run's folder (rank<r>.pt, rank<r>.log, job.json); None: a temporary one, removed
    logs: list[str] = field(default_factory=list)  # each process's stdout + stderr


@dataclass
class LocalRun:
    """The processes of a run started by :func:`start_local` (one per party, or one torchrun)."""

    procs: list[subprocess.Popen]
    out: Path
    started: float
    exited: dict[int, float] = field(default_factory=dict)  # process index -> time.monotonic() at its exit

    def wait(self, seconds: float, ranks: Sequence[int] | None = None) -> list[int | None]:
        """Wait up to ``seconds`` for every process (or those of ``ranks``); returns every exit code
        (None: still running)."""
        deadline = time.monotonic() + seconds
        awaited = set(range(len(self.procs)) if ranks is None else ranks)
        while True:
            for i, proc in enumerate(self.procs):
                if i not in self.exited and proc.poll() is not None:
                    self.exited[i] = time.monotonic()
            if awaited <= set(self.exited) or time.monotonic() > deadline:
                return [p.poll() for p in self.procs]
            time.sleep(0.05)

    def kill(self) -> None:
        """Kill every process of the run that is still running (by its own id) and reap it."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
                pass

    def log(self, i: int) -> str:
        path = self.out / f"rank{i}.log"
        return path.read_text(errors="replace") if path.is_file() else ""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_local(
    split: Split,
    spec: RunSpec,
    params: TrainParams,
    model: ModelParams,
    seed: int = 0,
    clients: int = 1,
    handover: str = "relay",
    timeout: float = DEFAULT_TIMEOUT_S,
    distance: str = "euclidean",
    out: Path | None = None,
    port: int | None = None,
    master_addr: str = "127.0.0.1",
    launcher: Literal["python", "torchrun"] = "python",
    die_at: tuple[int, int] | None = None,
    stop_at: tuple[int, int] | None = None,
) -> LocalRun:
    """Start the ``clients + 1`` processes of a run on this machine and return at once (see :func:`run_local`).

    ``launcher="python"``: one ``python -m nopeek_repro.wire`` per party with ``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT`` set as torchrun would (each party then fails or survives on its own,
    which the fault tests need; torchrun's agent stops all workers when one fails); ``"torchrun"``: one
    ``torchrun --nproc-per-node clients+1`` process. Each process gets one torch thread unless ``params``
    says more, and writes ``rank<r>.log`` (stdout and stderr) and ``rank<r>.pt`` into ``out``.
    """
    if handover not in HANDOVERS:
        raise ValueError(f"handover must be one of {', '.join(HANDOVERS)}, got {handover!r}")
    shards(len(split.y_train), clients)  # enough rows for every client, or a clear error here
    out = Path(tempfile.mkdtemp(prefix="nopeek-wire-")) if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _save_training_part(split, out / "training_part.pt")
    job = Job(
        spec,
        params,
        model,
        seed=seed,
        clients=clients,
        handover=handover,
        timeout=timeout,
        distance=distance,
        split_file=str(out / "training_part.pt"),
        out=str(out),
        die_at=die_at,
        stop_at=stop_at,
    )
    (out / "job.json").write_text(job.to_json())
    port = free_port() if port is None else port
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(params.threads)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "TORCHELASTIC_RUN_ID"):
        env.pop(var, None)
    env.update(MASTER_ADDR=master_addr, MASTER_PORT=str(port))
    world = clients + 1
    args = ["-m", "nopeek_repro.wire", "--job", str(out / "job.json")]
    procs = []
    started = time.monotonic()
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world), "--nnodes", "1"]
        cmd += ["--master-addr", master_addr, "--master-port", str(port), *args[0:]]
        with open(out / "rank0.log", "wb") as log_file:
            procs.append(subprocess.Popen(cmd, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT))
    else:
        for rank in range(world):
            penv = {**env, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)}
            penv["LOCAL_WORLD_SIZE"] = str(world)
            with open(out / f"rank{rank}.log", "wb") as log_file:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, *args], cwd=root, env=penv, stdout=log_file, stderr=subprocess.STDOUT
                    )
                )
    return LocalRun(procs, out, started)


def run_local(
    split: Split,
    spec: RunSpec,
    params: TrainParams,
    model: ModelParams,
    seed: int = 0,
    clients: int = 1,
    handover: str = "relay",
    timeout: float = DEFAULT_TIMEOUT_S,
    distance: str = "euclidean",
    out: Path | None = None,
    launcher: Literal["python", "torchrun"] = "python",
    wait_s: float = 3600.0,
) -> WireResult:
    """Train over the wire on localhost (one server, ``clients`` clients, each its own process) and gather
    the results here. The arguments are :func:`nopeek_repro.train.train`'s (``params.threads`` torch
    threads per process: 1 keeps a small machine usable) plus the wire's own. A process that fails, or a
    run longer than ``wait_s``, raises :class:`WireError` with the processes' messages (the rest are
    killed)."""
    tmp = tempfile.TemporaryDirectory(prefix="nopeek-wire-") if out is None else None
    folder = Path(tmp.name) if tmp is not None else Path(out)  # type: ignore[arg-type]
    run = start_local(split, spec, params, model, seed, clients, handover, timeout, distance, folder, launcher=launcher)
    try:
        codes = run.wait(wait_s)
        if any(c is None for c in codes):
            raise WireError(f"wire: the run did not finish within {wait_s:g} s")
        if any(codes):
            run.wait(timeout + 15)  # the survivors exit on their own within the bound
            msgs = [ln for i in range(len(run.procs)) for ln in run.log(i).splitlines() if ln.startswith("wire:")]
            tail = "" if msgs else " (no message; the end of rank 0's log: " + run.log(0)[-2000:] + ")"
            raise WireError("; ".join(msgs) + f" [exit codes {[p.poll() for p in run.procs]}]" + tail)
        result = load_result(folder, clients)
    finally:
        run.kill()
        if tmp is not None:
            tmp.cleanup()
    if tmp is not None:
        result.out = None
    return result


def load_result(out: Path, clients: int) -> WireResult:
    """The results that the processes of a finished run wrote into ``out``."""
    server = torch.load(out / "rank0.pt", weights_only=True)
    client_files = [torch.load(out / f"rank{c}.pt", weights_only=True) for c in range(1, clients + 1)]
    logs = [p.read_text(errors="replace") for p in sorted(out.glob("rank*.log"))]
    return WireResult(
        server=server["state"],
        clients=[c["state"] for c in client_files],
        history=pd.DataFrame(server["history"]),
        traffic=pd.DataFrame(server["traffic"]),
        client_stats=[pd.DataFrame(c["stats"]) for c in client_files],
        report_bytes=int(server["report_bytes"]),
        out=out,
        logs=logs,
    )


def parties(
    result: WireResult,
    split: Split,
    spec: RunSpec,
    params: TrainParams,
    model: ModelParams,
    seed: int,
    client: int = 1,
    distance: str = "euclidean",
) -> tuple[Client, Server]:
    """Client ``client`` and the server of a finished run in this process (for
    :func:`nopeek_repro.train.evaluate`, the attacks, ...)."""
    c, s = train.make_parties(spec, model, split, params.lr, params.alpha_task, seed, params.device, distance)
    c.net.load_state_dict(result.clients[client - 1])
    s.net.load_state_dict(result.server)
    return c, s


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def _rank_step(text: str) -> tuple[int, int]:
    rank, step = text.split(":")
    return int(rank), int(step)


def _settings() -> config.Params:
    """The experiment settings the flags default to: the repository's params.yaml (the defaults of
    :mod:`nopeek_repro.config` outside a checkout), so a setting has one source."""
    try:
        return config.load()
    except (config.ParamsError, FileNotFoundError):
        return config.Params()


def job_from_args(argv: list[str] | None = None) -> Job:
    base = _settings()
    ap = argparse.ArgumentParser(
        prog="python -m nopeek_repro.wire",
        description=__doc__.splitlines()[0],
        epilog="Defaults of the training and model flags: params.yaml (train, model, nopeek.distance).",
    )
    ap.add_argument("--clients", type=int, default=1, help="K clients (K + 1 processes: rank 0 is the server)")
    ap.add_argument("--epochs", type=int, default=base.train.epochs)
    ap.add_argument("--seed", type=int, default=0, help="initial weights, batch order, noise")
    ap.add_argument("--n-train", type=int, default=1024, help="training rows of the embedded MNIST sample")
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--split-file", default=None, help="a prepared split (.npz) instead of the sample")
    ap.add_argument("--batch-size", type=int, default=base.train.batch_size)
    ap.add_argument("--lr", type=float, default=base.train.lr)
    ap.add_argument("--alpha-dcor", type=float, default=0.0, help="> 0: NoPeek with this weight")
    ap.add_argument("--noise", type=float, default=0.0, help="> 0: the uniform-noise defence U(-b, b)")
    ap.add_argument("--distance", choices=("euclidean", "squared"), default=base.nopeek.distance)
    ap.add_argument("--arch", default=base.model.arch)
    ap.add_argument("--cut-layer", default=base.model.cut_layer)
    ap.add_argument("--handover", choices=HANDOVERS, default="relay", help="k >= 2: relay or none (module doc)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before a silent peer is lost")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="cuda: NCCL between GPUs")
    ap.add_argument("--out", default=None, help="folder for each party's rank<r>.pt")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)  # run_local: a Job as JSON
    ap.add_argument("--die-at", type=_rank_step, default=None, help=argparse.SUPPRESS)  # tests: RANK:STEP
    ap.add_argument("--stop-at", type=_rank_step, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.job is not None:
        return Job.from_json(Path(a.job).read_text())
    if a.alpha_dcor and a.noise:
        ap.error("--alpha-dcor and --noise are two defences: give one")
    spec = RunSpec("nopeek", alpha_dcor=a.alpha_dcor) if a.alpha_dcor else RunSpec()
    spec = RunSpec("noise", noise=a.noise) if a.noise else spec
    cut: int | str | None = int(a.cut_layer) if str(a.cut_layer).isdigit() else a.cut_layer
    params = base.train.model_copy(
        update=dict(
            seeds=[a.seed], epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, threads=a.threads, device=a.device
        )
    )
    return Job(
        spec,
        params,
        base.model.model_copy(update=dict(arch=a.arch, cut_layer=cut)),
        seed=a.seed,
        clients=a.clients,
        handover=a.handover,
        timeout=a.timeout,
        distance=a.distance,
        split_file=a.split_file,
        n_train=a.n_train,
        n_test=a.n_test,
        test_fraction=a.test_fraction,
        split_seed=a.split_seed,
        out=a.out,
        die_at=a.die_at,
        stop_at=a.stop_at,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    try:
        job = job_from_args(argv)
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except KeyError as err:
        log.error("wire: %s is not set: start the parties with torchrun (module doc) or run_local", err)
        return 2
    except (ValueError, OSError) as err:
        log.error("wire: %s", err)
        return 2
    try:
        me = Party(job, rank, world)
        me.connect()
        out = me.run()
    except (WireError, train.TrainingDiverged) as err:
        _fatal(str(err))  # the process group is broken: exit at once, without its teardown
        return 1
    except Exception:  # noqa: BLE001 - anything else: its traceback, then out at once (peers see us leave)
        log.exception("wire: %s failed", party(rank))
        _fatal(f"wire: {party(rank)} failed (traceback above)")
        return 1
    me.close()
    if rank == 0:
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(pd.DataFrame(out["history"]).to_string(index=False))
            print(pd.DataFrame(out["traffic"]).to_string(index=False))
        print(f"reports after training: {out['report_bytes']} bytes from {job.clients} client(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
