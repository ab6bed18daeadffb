"""Benchmark: one optimiser step of the attacker's decoder, in the default (NCHW) and the
channels-last (NHWC) memory layout that :func:`nopeek_repro.attacks.fit_decoder` uses.

    python -m benchmarks.bench_decoder            # 200 steps per layout, 3 rounds
    python -m benchmarks.bench_decoder --quick    # 20 steps, 1 round (what the tests run)

The default run's setting: the simple decoder (width 32) behind a per-channel standardisation,
Z = 16 x 14 x 14 -> X = 1 x 28 x 28, batch 64, Adam, MSE, the kit's determinism settings and
``--threads`` torch threads. The two layouts run in alternation (so that load from other processes
hits both alike) from the same initial weights and batches; it prints the median time per step of
each, the ratio NCHW / NHWC (the speed-up the kit takes) and the largest difference between the two
decoders' losses (the same math in another summation order: not bitwise equal, close).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from nopeek_repro import models, runtime


def _decoder(fmt: torch.memory_format) -> nn.Module:
    torch.manual_seed(0)
    z = torch.randn(512, 16, 14, 14)
    net = nn.Sequential(models.Standardize.fit(z), models.build_decoder("simple", (16, 14, 14), (1, 28, 28)))
    return net.to(memory_format=fmt)


def steps(fmt: torch.memory_format, z: torch.Tensor, x: torch.Tensor, n: int, batch: int = 64) -> tuple[float, float]:
    """Seconds per step (after 3 warm-up steps) and the last loss, for ``n`` steps in layout ``fmt``."""
    net = _decoder(fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    loss = torch.zeros(())
    start = 0.0
    for i in range(n + 3):
        if i == 3:
            start = time.perf_counter()
        idx = torch.randint(len(z), (batch,), generator=g)
        loss = F.mse_loss(net(z[idx].contiguous(memory_format=fmt)), x[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / n, float(loss.detach())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_decoder", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    runtime.set_determinism(0, args.threads)
    n, rounds = (20, 1) if args.quick else (200, 3)
    g = torch.Generator().manual_seed(1)
    z = torch.relu(torch.randn(2048, 16, 14, 14, generator=g))
    x = torch.rand(2048, 1, 28, 28, generator=g)
    layouts = {"NCHW (contiguous)": torch.contiguous_format, "NHWC (channels last)": torch.channels_last}
    times: dict[str, list[float]] = {k: [] for k in layouts}
    losses: dict[str, float] = {}
    for _ in range(rounds):
        for name, fmt in layouts.items():
            t, losses[name] = steps(fmt, z, x, n)
            times[name].append(t)
    print(
        f"# decoder step benchmark: torch {torch.__version__}, {args.threads} threads, batch 64, {n} steps x "
        f"{rounds} rounds, median"
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in layouts:
        print(f"{name:22s} {med[name] * 1e3:7.2f} ms/step")
    a, b = med.values()
    print(
        f"ratio NCHW / NHWC: {a / b:.2f}x; last losses {losses} (differ by "
        f"{abs(losses['NCHW (contiguous)'] - losses['NHWC (channels last)']):.2e})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
