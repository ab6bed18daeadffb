"""Benchmark: one split-learning training step over a real wire (:mod:`nopeek_repro.wire`: a server and a
client process on localhost, gloo) against the same step in one process (:func:`nopeek_repro.train.train`'s loop).

    python -m benchmarks.bench_wire            # 40 steps an epoch, 2 rounds
    python -m benchmarks.bench_wire --quick    # 10 steps, 1 round

The default run's model (cnn cut at block2: Z = 32 x 7 x 7), batch 64, the embedded MNIST sample, the
baseline and NoPeek (alpha_dcor 3), ``--threads`` torch threads in every process. Each measurement is
the second of two epochs over the same batches (the first warms up); the in-process step and the wire
run alternate in each round (so that load from other processes hits both alike). It prints the median
time per step of each, the ratio wire / in-process, the wire client's share of time blocked in
send/recv, and the bytes per step each way, measured against :func:`nopeek_repro.wire.expected_bytes`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nopeek_repro import config, data, runtime, train, wire
from nopeek_repro.config import ModelParams
from nopeek_repro.defences import RunSpec


def in_process(split: data.Split, spec: RunSpec, params: config.TrainParams, model: ModelParams) -> float:
    """Seconds per step of the in-process loop (client forward, server step, client backward), second epoch."""
    runtime.set_determinism(0, params.threads)
    client, server = train.make_parties(spec, model, split, params.lr, params.alpha_task, 0)
    order = torch.Generator().manual_seed(0)
    per_step = 0.0
    for _ in range(2):
        idx_list = runtime.batches(len(split.x_train), params.batch_size, order)
        start = time.perf_counter()
        for idx in idx_list:
            client.backward(server.train_step(client.forward(split.x_train[idx]), split.y_train[idx]))
        per_step = (time.perf_counter() - start) / len(idx_list)
    return per_step


def over_the_wire(
    split: data.Split, spec: RunSpec, params: config.TrainParams, model: ModelParams
) -> tuple[float, float, dict[str, float]]:
    """Seconds per step over the wire (the server's second epoch), the client's share of time in send/recv,
    and the second epoch's bytes per step."""
    result = wire.run_local(split, spec, params, model, seed=0, clients=1, timeout=60, wait_s=600)
    last = result.traffic.iloc[-1]
    steps = float(last["steps"])
    share = last["clients_comm_s"] / (last["clients_comm_s"] + last["clients_compute_s"])
    per = {k: float(last[k]) / steps for k in ("z_bytes", "header_bytes", "grad_bytes", "bytes_up", "bytes_down")}
    return float(last["wall_s"]) / steps, float(share), per


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_wire", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = ap.parse_args(argv)
    steps, rounds = (10, 1) if args.quick else (40, 2)
    batch = 64
    model = ModelParams()  # the default run: cnn, cut_layer block2
    params = config.TrainParams(seeds=[0], epochs=2, batch_size=batch, lr=1e-3, threads=args.threads)
    split = data.prepare(data.sample_source(), 0.2, 0, n_train=batch * steps, n_test=64)
    zs = wire.z_shape(model, split.image_shape, split.n_classes)
    formula = wire.expected_bytes(zs, len(split.y_train), batch, epochs=1)
    print(
        f"# wire step benchmark: torch {torch.__version__}, {args.threads} thread(s) per process, cnn cut "
        f"block2 (Z = {' x '.join(map(str, zs))}), batch {batch}, {steps} steps an epoch x {rounds} rounds, "
        "median; localhost, gloo, one server and one client process"
    )
    for spec in (RunSpec(), RunSpec("nopeek", alpha_dcor=3.0)):
        local: list[float] = []
        remote: list[float] = []
        shares: list[float] = []
        per: dict[str, float] = {}
        for _ in range(rounds):
            local.append(in_process(split, spec, params, model))
            t, share, per = over_the_wire(split, spec, params, model)
            remote.append(t)
            shares.append(share)
        a, b = statistics.median(local), statistics.median(remote)
        print(
            f"{spec.name:12s} in-process {a * 1e3:7.2f} ms/step | over the wire {b * 1e3:7.2f} ms/step | "
            f"ratio wire / in-process: {b / a:.2f}x | client blocked in send/recv {statistics.median(shares):.0%}"
        )
    f_up = (formula["z_bytes"] + formula["header_bytes"]) / formula["steps"]
    f_down = formula["grad_bytes"] / formula["steps"]
    print(
        f"bytes per step: up {per['bytes_up']:,.0f} (Z {per['z_bytes']:,.0f} + header {per['header_bytes']:,.0f}), "
        f"down {per['bytes_down']:,.0f}; formula (elements x 4 x batch + 64): up {f_up:,.0f}, down {f_down:,.0f}; "
        f"measured / formula: up {per['bytes_up'] / f_up:.4f}, down {per['bytes_down'] / f_down:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
