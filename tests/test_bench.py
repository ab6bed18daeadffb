"""The benchmark runs and compares like with like (timings are printed, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from benchmarks import bench_dcor as bench
from nopeek_repro.dcor import distance_correlation

COLUMNS = (
    "n",
    "d_z",
    "kit fwd",
    "kit fwd+bwd",
    "floor",
    "dcor pkg",
    "naive",
    "kit/floor",
    "dcor pkg/kit",
    "kit MiB",
    "pkg MiB",
)
STATUS = re.compile(r"^(met|NOT met \(.+\)|not measured( .+)?)$")


def test_naive_reference_computes_the_same_statistic():
    g = torch.Generator().manual_seed(0)
    x, z = torch.rand(30, 12, generator=g, dtype=torch.float64), torch.rand(30, 7, generator=g, dtype=torch.float64)
    assert float(bench._naive_dcor(x, z)) == pytest.approx(float(distance_correlation(x, z)), abs=1e-10)


def test_quick_benchmark_prints_every_measure(root):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_dcor", "--quick", "--repeat", "1", "--max-gib", "0.5"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.split()[:2] == ["n", "d_z"])
    pos = [header.find(c) for c in COLUMNS]
    assert -1 not in pos and pos == sorted(pos), header  # every column, in order
    rows = [line for line in lines if re.match(r"^\s*(64|256)\s+(784|6272)\s+\|", line)]
    assert len(rows) == 4
    for row in rows:
        assert row.count("|") == 3 and " ms" in row and "x" in row.split("|")[2]
    out = proc.stdout
    assert "NumPy BLAS" in out and "OPENBLAS_* variables" in out
    assert "in a child without OPENBLAS_* variables" in out  # the dcor package timed without them too
    assert "blocked leakage DCOR, n = 2000" in out and "peak memory" in out
    assert "training step, batch 64" in out and "ratio" in out
    # the targets table: a header and one line per target, each with a status
    start = lines.index("# targets (all measured above, in this run)")
    assert lines[start + 1].split("|")[0].strip() == "target"
    targets = lines[start + 2 :]
    assert len(targets) == 4
    names = [t.split("|")[0] for t in targets]
    assert "dcor pkg fwd, n=256, d_z=6272: >= 200x" in names[0]
    assert "vs floor, n >= 1024: <= 1.5x" in names[1]
    assert "leakage n=10000, d_z=6272: <= 60 s, <= 2 GB" in names[2]
    assert "NoPeek step / plain step" in names[3] and "<= 1.2" in names[3]
    for t in targets:
        assert STATUS.match(t.split("|")[2].strip()), t
    assert "not measured" in targets[1] and "not measured at n=10000" in targets[2]


def _row(n, dz, kit, floor, pkg=None):
    return {
        "n": n,
        "d_z": dz,
        "kit_fwd": kit / 2,
        "kit_fwd_bwd": kit,
        "floor": floor,
        "dcor_pkg": pkg,
        "naive": None,
        "kit_mib": 1.0,
        "pkg_mib": None,
        "pkg_need_gib": bench.pkg_need_gib(n, dz),
    }


def test_target_lines_met():
    rows = [_row(256, 6272, 0.004, 0.0035, pkg=1.0), _row(1024, 784, 0.030, 0.025), _row(4096, 784, 0.5, 0.45)]
    lines = bench._target_lines(rows, (20.0, 1.2, 0.6, 0.0, 0.9), 10_000, 1.05)
    assert [s for _, _, s in lines] == ["met"] * 4
    assert "250.0x" in lines[0][1] and "worst 1.20x (n=1024, d_z=784)" in lines[1][1]


def test_target_lines_not_met_say_by_how_much_and_why():
    rows = [_row(256, 6272, 0.016, 0.012, pkg=1.2), _row(1024, 784, 0.040, 0.025), _row(4096, 784, 0.5, 0.45)]
    lines = bench._target_lines(rows, (75.0, 2.5, 0.6, 0.0, 0.9), 10_000, 1.3)
    status = [s for _, _, s in lines]
    assert status[0].startswith("NOT met (2.7x short") and "unreachable for any exact method" in status[0]
    assert "dcor pkg / floor = 100x" in status[0]
    assert status[1] == "NOT met (by 1.07x)" and "worst 1.60x (n=1024, d_z=784)" in lines[1][1]
    assert status[2] == "NOT met (time by 1.25x, memory by 1.34x)"
    assert status[3] == "NOT met (by 1.08x)"


def test_target_lines_pkg_skipped():
    lines = bench._target_lines([_row(256, 6272, 0.016, 0.012)], None, 2000, 1.0)
    assert lines[0][2].startswith("not measured (dcor pkg skipped (needs 3.1 GiB")
    assert lines[2][2] == "not measured"


def test_peak_memory_sees_a_large_allocation():
    with bench.PeakMemory("cpu") as peak:
        t = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB
        del t
    if peak.mib is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert peak.mib >= 48


def test_decoder_benchmark_compares_the_two_layouts(root):
    """Both memory layouts run the same math from the same weights and batches; only the times differ."""
    from benchmarks import bench_decoder

    z, x = torch.relu(torch.randn(128, 16, 14, 14)), torch.rand(128, 1, 28, 28)
    _, a = bench_decoder.steps(torch.contiguous_format, z, x, n=5)
    _, b = bench_decoder.steps(torch.channels_last, z, x, n=5)
    assert a == pytest.approx(b, rel=1e-4)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_decoder", "--quick"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ratio NCHW / NHWC:" in proc.stdout and "ms/step" in proc.stdout
