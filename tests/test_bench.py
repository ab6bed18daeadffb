"""The benchmark runs and compares like with like (timings are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nopeek_repro import bench
from nopeek_repro.dcor import distance_correlation


def test_naive_reference_computes_the_same_statistic():
    g = torch.Generator().manual_seed(0)
    x, z = torch.rand(30, 12, generator=g, dtype=torch.float64), torch.rand(30, 7, generator=g, dtype=torch.float64)
    assert float(bench._naive_dcor(x, z)) == pytest.approx(float(distance_correlation(x, z)), abs=1e-10)


@pytest.mark.slow
def test_quick_benchmark_prints_every_measure(root):
    proc = subprocess.run([sys.executable, "-m", "nopeek_repro.bench", "--quick", "--repeat", "1", "--max-gib", "0.5"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "kit/floor" in out and "dcor pkg/kit" in out
    assert len([line for line in out.splitlines() if line.strip().startswith(("64 ", "256 "))]) == 4
    assert "blocked leakage DCOR, n = 2000" in out and "peak memory" in out
    assert "training step, batch 64" in out and "ratio" in out
