"""Benchmark: the kit's DCOR against the `dcor` package, a naive broadcast version and the floor.

    python -m nopeek_repro.bench            # the full grid (minutes on 2 cores)
    python -m nopeek_repro.bench --quick    # a small grid (seconds), what the tests run

For each n (samples) and d_z (activation size), with d_x = 784 (MNIST pixels), float32 on the CPU
(or CUDA with ``--device cuda``), it prints in one run on one machine:

- ``kit fwd`` / ``kit fwd+bwd``: :func:`nopeek_repro.dcor.distance_correlation`, forward, and
  forward plus backward with respect to Z (what a NoPeek training step pays);
- ``floor``: the matrix products any exact forward and backward needs: X X^T, Z Z^T and one
  (n x n) @ (n x d_z) product for the gradient;
- ``dcor pkg``: the `dcor` package's ``distance_correlation`` (float64, forward only), where its
  O(n^2 d) memory fits under ``--max-gib``;
- ``naive``: a broadcast ``(z[:, None] - z[None]).norm(-1)`` implementation like the public
  peers' (forward+backward), where its O(n^2 d) memory fits;
- the ratios kit fwd+bwd / floor and dcor pkg / kit fwd+bwd.

Then the blocked leakage over a large test set (time and peak memory, measured in a child
process) and the training overhead: time per NoPeek step / time per plain split step at the
default batch size and model. Timings are medians of ``--repeat`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

from .dcor import distance_correlation, leakage

GIB = 1024**3


def _median_time(fn: Callable[[], object], repeat: int, device: str) -> float:
    fn()
    times = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _naive_dcor(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The peers' way: O(n^2 d) broadcast distances (Euclidean), double centring, V-statistic."""
    def centred(t: torch.Tensor) -> torch.Tensor:
        d = (t[:, None, :] - t[None, :, :]).norm(dim=-1)
        return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()

    a, b = centred(x), centred(z)
    return torch.sqrt((a * b).mean() / torch.sqrt((a * a).mean() * (b * b).mean()))


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:9.2f} ms" if seconds < 1 else f"{seconds:9.2f} s "


def dcor_table(ns: list[int], dzs: list[int], repeat: int, device: str, max_gib: float) -> list[dict]:
    rows = []
    try:
        import dcor as dcor_pkg
    except ImportError:  # pragma: no cover - dcor is a test dependency
        dcor_pkg = None
    for n in ns:
        for dz in dzs:
            g = torch.Generator().manual_seed(0)
            x = torch.rand(n, 784, generator=g).to(device)
            z = torch.randn(n, dz, generator=g).to(device).requires_grad_(True)

            def fwd() -> None:
                with torch.no_grad():
                    distance_correlation(x, z)

            def fwd_bwd() -> None:
                z.grad = None
                distance_correlation(x, z).backward()

            def floor() -> None:
                with torch.no_grad():
                    _ = x @ x.T
                    gz = z @ z.T
                    _ = gz @ z

            row = {"n": n, "d_z": dz, "kit_fwd": _median_time(fwd, repeat, device),
                   "kit_fwd_bwd": _median_time(fwd_bwd, repeat, device), "floor": _median_time(floor, repeat, device)}
            need = n * n * max(dz, 784) * 8 / GIB  # the O(n^2 d) intermediates of the broadcast versions
            row["naive"] = None
            if need <= max_gib:
                def naive() -> None:
                    z.grad = None
                    _naive_dcor(x, z).backward()
                row["naive"] = _median_time(naive, max(1, repeat // 2), device)
            row["dcor_pkg"] = None
            if dcor_pkg is not None and need <= max_gib:
                xn, zn = x.double().cpu().numpy(), z.detach().double().cpu().numpy()
                row["dcor_pkg"] = _median_time(lambda: dcor_pkg.distance_correlation(xn, zn), max(1, repeat // 2), "cpu")
            row["need_gib"] = need
            rows.append(row)
            _print_row(row)
    return rows


def _print_row(r: dict) -> None:
    vs_floor = r["kit_fwd_bwd"] / r["floor"]
    vs_pkg = f"{r['dcor_pkg'] / r['kit_fwd_bwd']:8.1f}x" if r["dcor_pkg"] else f"  (needs {r['need_gib']:.1f} GiB)"
    print(f"{r['n']:>6} {r['d_z']:>6} | {_fmt(r['kit_fwd'])} {_fmt(r['kit_fwd_bwd'])} {_fmt(r['floor'])} "
          f"{_fmt(r['dcor_pkg']):>12} {_fmt(r['naive']):>12} | {vs_floor:9.2f}x {vs_pkg}", flush=True)


def leakage_child(n: int, dz: int) -> None:
    """Run in a child process: time the blocked leakage; the parent reads the peak memory."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 784, generator=g)
    z = torch.randn(n, dz, generator=g)
    t = time.perf_counter()
    out = leakage(x, z, block_size=1024)
    print(f"{time.perf_counter() - t:.3f} {out['dcor']:.6f} {out['dcor_unbiased_sqr']:.6f}")


def leakage_measure(n: int, dz: int) -> tuple[float, float, float]:
    """(seconds, peak resident GiB of the child process, DCOR)."""
    proc = subprocess.Popen([sys.executable, "-m", "nopeek_repro.bench", "--leakage-child", str(n), str(dz)],
                            stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().split() if proc.stdout else []
    if status != 0 or len(out) != 3:
        raise RuntimeError(f"leakage benchmark child failed (status {status})")
    return float(out[0]), usage.ru_maxrss * 1024 / GIB, float(out[1])


def training_overhead(repeat: int, device: str) -> tuple[float, float]:
    """(seconds per plain split step, seconds per NoPeek step) at batch 64 with the default model."""
    from .models import build_split_cnn
    from .split import Client, Server

    x = torch.rand(64, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (64,), device=device)
    times = []
    for alpha in (0.0, 30.0):
        torch.manual_seed(0)
        c_net, s_net = build_split_cnn(1)
        client = Client(c_net.to(device), lr=1e-3, alpha_dcor=alpha)
        server = Server(s_net.to(device), lr=1e-3)

        def step() -> None:
            client.backward(server.train_step(client.forward(x), y))

        times.append(_median_time(step, repeat * 5, device))
    return times[0], times[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nopeek_repro.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grid (seconds)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--max-gib", type=float, default=4.0, help="skip dcor/naive where they would need more")
    ap.add_argument("--leakage-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.leakage_child:
        leakage_child(*args.leakage_child)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    ns, dzs = ([64, 256], [784, 6272]) if args.quick else ([64, 256, 1024, 4096], [784, 6272, 16384])
    leak_n = 2000 if args.quick else 10000
    print(f"# DCOR benchmark: torch {torch.__version__}, device {args.device}, {args.threads} threads, "
          f"float32, d_x = 784, median of {args.repeat}")
    print(f"{'n':>6} {'d_z':>6} | {'kit fwd':>12} {'kit fwd+bwd':>12} {'floor':>12} {'dcor pkg':>12} {'naive':>12} | "
          f"{'kit/floor':>10} {'dcor pkg/kit':>10}")
    dcor_table(ns, dzs, args.repeat, args.device, args.max_gib)
    secs, gib, value = leakage_measure(leak_n, 6272)
    print(f"# blocked leakage DCOR, n = {leak_n}, d_z = 6272, float64 blocks of 1024: {secs:.1f} s, "
          f"peak memory {gib:.2f} GiB (DCOR {value:.4f})")
    plain, nopeek = training_overhead(args.repeat, args.device)
    print(f"# training step, batch 64, default CNN: plain {plain * 1e3:.1f} ms, NoPeek {nopeek * 1e3:.1f} ms, "
          f"ratio {nopeek / plain:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
