"""The catalogue of bad inputs (issue 12): what a user gets for each mistake in params.yaml, in a data
file or on the stage runner's command line.

Every case runs the real stage runner a user's ``dvc repro`` runs (``python -m nopeek_repro.pipeline
prepare``, or the case's own arguments) in a throw-away copy of the repository, with the case's bad
``params.yaml`` and data files written there, and asserts that

* it exits with code 2;
* its stderr holds no Python traceback, and the last non-empty line of stderr starts with ``error:``
  and contains every expected substring of the table below (exact, case-sensitive substrings);
* no file of the copy changed, was added or was deleted (a snapshot of every file's sha256, taken
  with the bad input already written, compared after the run; .git/, .dvc/tmp/, .dvc/cache/ and
  __pycache__/ left out);
* no process is left behind whose command line names the copy, or that runs in it (a kernel).

The table is the catalogue: each row is a mistake and the words its message must contain. The last
test checks that the corrected input then runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

from .conftest import copy_repo, tool_env

pytestmark = pytest.mark.slow

TIMEOUT = 180
"""Seconds one run of the stage runner may take."""
SKIPPED = {".git", ".dvc/tmp", ".dvc/cache"}
"""Folders (relative to the copy) the snapshot leaves out, besides every __pycache__/."""


# ---------------------------------------------------------------------------------------------
# the cases' inputs


@dataclass(frozen=True)
class Raw:
    """A value written into params.yaml as this exact YAML text (e.g. ``[1e3]``, which YAML reads as a string)."""

    text: str


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _npz(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _images(n: int, side: int = 28) -> np.ndarray:
    return _rng().integers(0, 256, size=(n, side, side), dtype=np.uint8)


def _labels(n: int) -> np.ndarray:
    return np.arange(n) % 10


def _one_class(data: Path, outside: Path) -> list[Path]:
    _npz(data / "bad.npz", x=_images(40), y=np.zeros(40, dtype=np.int64))
    return [data / "bad.npz"]


def _three_images(data: Path, outside: Path) -> list[Path]:
    _npz(data / "bad.npz", x=_images(3), y=np.array([0, 1, 2]))
    return [data / "bad.npz"]


def _tiny_images(data: Path, outside: Path) -> list[Path]:
    _npz(data / "bad.npz", x=_images(60, side=8), y=_labels(60))
    return [data / "bad.npz"]


def _nan(data: Path, outside: Path) -> list[Path]:
    x = _rng().random((40, 28, 28), dtype=np.float32)
    x[7, 3, 5] = np.nan
    _npz(data / "bad.npz", x=x, y=_labels(40))
    return [data / "bad.npz"]


def _text_file(data: Path, outside: Path) -> list[Path]:
    (data / "bad.npz").write_text("hello\n")
    return [data / "bad.npz"]


def _symlink_outside(data: Path, outside: Path) -> list[Path]:
    target = outside / "elsewhere.npz"
    _npz(target, x=_images(60), y=_labels(60))  # a valid file, but not under data/
    (data / "bad.npz").symlink_to(target)
    return [data / "bad.npz"]


def _no_labels(data: Path, outside: Path) -> list[Path]:
    _npz(data / "bad.npz", x=_images(60))
    return [data / "bad.npz"]


@dataclass(frozen=True)
class Case:
    """One bad input and what the runner's message must say about it."""

    expected: tuple[str, ...]  # substrings of stderr's last non-empty line, exact
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # merged into the default params.yaml
    append: str | None = None  # raw text appended to the default params.yaml
    text: str | None = None  # raw text that replaces params.yaml
    delete_params: bool = False  # no params.yaml at all (the runner gets NOPEEK_ROOT)
    files: Callable[[Path, Path], list[Path]] | None = None  # writes data files (data/, a folder outside the copy)
    argv: tuple[str, ...] = ("prepare",)
    absent: tuple[str, ...] = ()  # must not appear anywhere in stderr
    once: tuple[str, ...] = ()  # must appear exactly once in stderr


NPZ = {"data": {"dataset": "npz", "source": "bad"}}
"""The data cases' params: data.dataset npz reads data/bad.npz."""

CATALOGUE = [
    # duplicates in a sweep or a list of seeds
    pytest.param(Case(("nopeek.alpha_dcor", "duplicate"), {"nopeek": {"alpha_dcor": [10, 10]}}), id="alpha-duplicate"),
    pytest.param(Case(("train.seeds", "duplicate"), {"train": {"seeds": [0, 0]}}), id="seeds-duplicate"),
    pytest.param(Case(("noise.scale", "duplicate"), {"noise": {"scale": [2, 2]}}), id="noise-duplicate"),
    pytest.param(
        Case(("study.alpha_dcor", "duplicate"), {"study": {"alpha_dcor": [1, 1]}}), id="study-alpha-duplicate"
    ),
    pytest.param(
        Case(("attack.leak_sweep", "duplicate"), {"attack": {"leak_sweep": [0.01, 0.01]}}), id="leak-sweep-duplicate"
    ),
    # unknown sections and keys
    pytest.param(Case(("foo", "unknown section", "allowed: data, model"), append="\nfoo: 1\n"), id="section-scalar"),
    pytest.param(Case(("foo", "unknown section"), {"foo": {"bar": 1}}), id="section-mapping"),
    pytest.param(Case(("train.epoch", "unknown parameter"), {"train": {"epoch": 5}}), id="key-misspelt"),
    # sweep values: precision, type, range, spelling
    pytest.param(
        Case(("nopeek.alpha_dcor", "at most 100000"), {"nopeek": {"alpha_dcor": [1234567]}}), id="alpha-7-digits"
    ),
    pytest.param(
        Case(("nopeek.alpha_dcor", "6 significant digits"), {"nopeek": {"alpha_dcor": [0.1234567, 0.1234568]}}),
        id="alpha-same-at-6-digits",
    ),
    pytest.param(Case(("noise.scale", "6 significant digits"), {"noise": {"scale": [0.1234567]}}), id="noise-7-digits"),
    pytest.param(Case(("nopeek.alpha_dcor", "a list"), {"nopeek": {"alpha_dcor": 10}}), id="alpha-not-a-list"),
    pytest.param(
        Case(("nopeek.alpha_dcor", "plain number"), {"nopeek": {"alpha_dcor": Raw("[1e3]")}}, absent=("1000.0",)),
        id="alpha-1e3-string",
    ),
    pytest.param(
        Case(("nopeek.alpha_dcor", "plain number"), {"nopeek": {"alpha_dcor": ["abc"]}}, once=("nopeek.alpha_dcor",)),
        id="alpha-text",
    ),
    pytest.param(Case(("nopeek.alpha_dcor", "greater than 0"), {"nopeek": {"alpha_dcor": [-5]}}), id="alpha-negative"),
    pytest.param(Case(("nopeek.alpha_dcor", "greater than 0"), {"nopeek": {"alpha_dcor": [0]}}), id="alpha-zero"),
    pytest.param(Case(("nopeek.alpha_dcor", "whole numbers"), {"nopeek": {"alpha_dcor": [1000.0]}}), id="alpha-1000.0"),
    pytest.param(Case(("nopeek.alpha_dcor", "plain number"), {"nopeek": {"alpha_dcor": [True]}}), id="alpha-bool"),
    pytest.param(Case(("noise.scale", "at most 100000"), {"noise": {"scale": Raw("[1.0e+20]")}}), id="noise-huge"),
    pytest.param(
        Case(("nopeek.alpha_dcor", "at most 100000"), {"nopeek": {"alpha_dcor": Raw("[1.0e+9]")}}), id="alpha-huge"
    ),
    # training settings
    pytest.param(Case(("train.epochs", "greater than or equal to 1"), {"train": {"epochs": 0}}), id="epochs-zero"),
    pytest.param(
        Case(("train.batch_size", "greater than or equal to 2"), {"train": {"batch_size": 1}}), id="batch-size-one"
    ),
    pytest.param(Case(("train.seeds", "at least 1"), {"train": {"seeds": []}}), id="seeds-empty"),
    pytest.param(Case(("train.seeds", "greater than or equal to 0"), {"train": {"seeds": [-1]}}), id="seeds-negative"),
    pytest.param(
        Case(("attack.classifier_seed", "train.seeds"), {"attack": {"classifier_seed": 0}}), id="judge-seed-in-seeds"
    ),
    pytest.param(Case(("model.cut_layer", "not a cut point"), {"model": {"cut_layer": 3}}), id="cut-layer-3"),
    pytest.param(
        Case(("model.cut_layer", "not a cut point of resnet29"), {"model": {"arch": "resnet29"}}),
        id="arch-resnet29-default-cut",
    ),
    pytest.param(Case(("model.arch", "cnn"), {"model": {"arch": "vgg"}}), id="arch-unknown"),
    pytest.param(Case(("data.dataset", "mnist-sample"), {"data": {"dataset": "svhn"}}), id="dataset-unknown"),
    pytest.param(Case(("data.test_fraction",), {"data": {"test_fraction": 1.5}}), id="test-fraction-1.5"),
    pytest.param(Case(("train.device", "cpu"), {"train": {"device": "tpu"}}), id="device-tpu"),
    pytest.param(Case(("attack.leak_fraction",), {"attack": {"leak_fraction": 0}}), id="leak-fraction-zero"),
    pytest.param(Case(("nopeek.distance", "euclidean"), {"nopeek": {"distance": "cosine"}}), id="distance-unknown"),
    pytest.param(
        Case(("train.client_optimizer", "adam"), {"train": {"client_optimizer": "rmsprop"}}), id="optimizer-unknown"
    ),
    pytest.param(Case(("train.lr", "greater than 0"), {"train": {"lr": -1}}), id="lr-negative"),
    # the params file itself
    pytest.param(Case(("params.yaml", "not found"), delete_params=True), id="params-missing"),
    pytest.param(Case(("params.yaml", "not valid YAML"), text=": : :\n"), id="params-not-yaml"),
    pytest.param(Case(("params.yaml", "mapping"), text="- 1\n- 2\n"), id="params-a-list"),
    # the runner's command line
    pytest.param(Case(("stage 'trian' is unknown",), argv=("trian",)), id="stage-unknown"),
    pytest.param(Case(("train_nopeek", "item"), argv=("train_nopeek",)), id="stage-item-missing"),
    pytest.param(Case(("must be a number",), argv=("train_nopeek", "abc")), id="stage-item-not-a-number"),
    # data files (data.dataset npz, data/bad.npz)
    pytest.param(Case(("data/bad.npz", "2 classes"), NPZ, files=_one_class), id="npz-one-class"),
    pytest.param(Case(("data/bad.npz", "too few"), NPZ, files=_three_images), id="npz-three-images"),
    pytest.param(Case(("data.image_size",), NPZ, files=_tiny_images), id="npz-8x8"),
    pytest.param(Case(("data/bad.npz", "not finite"), NPZ, files=_nan), id="npz-nan"),
    pytest.param(Case(("data/bad.npz", "not an npz"), NPZ, files=_text_file), id="npz-text-file"),
    pytest.param(Case(("data/bad.npz", "outside data/"), NPZ, files=_symlink_outside), id="npz-symlink-outside"),
    pytest.param(Case(("data/bad.npz", "y"), NPZ, files=_no_labels), id="npz-no-labels"),
    pytest.param(Case(("data/missing.npz",), {"data": {"dataset": "npz", "source": "missing"}}), id="npz-missing"),
]


# ---------------------------------------------------------------------------------------------
# helpers


def _default_text() -> str:
    from nopeek_repro import config

    return config.render(config.Params())


def _params_text(overrides: dict[str, dict[str, Any]]) -> str:
    """The default params.yaml with ``overrides`` merged in section by section (:class:`Raw` values verbatim)."""
    raw = yaml.safe_load(_default_text())
    verbatim: dict[str, str] = {}
    for section, values in overrides.items():
        merged = dict(raw.get(section) or {})
        for key, value in values.items():
            if isinstance(value, Raw):
                verbatim[f"__raw_{len(verbatim)}__"] = value.text
                value = f"__raw_{len(verbatim) - 1}__"
            merged[key] = value
        raw[section] = merged
    text = yaml.safe_dump(raw, sort_keys=False)
    for marker, value in verbatim.items():
        assert text.count(marker) == 1
        text = text.replace(marker, value)
    return text


def _run(copy: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m nopeek_repro.pipeline ARGV`` in the copy, as DVC runs it; killed after TIMEOUT seconds."""
    cmd = [sys.executable, "-m", "nopeek_repro.pipeline", *argv]
    proc = subprocess.Popen(
        cmd,
        cwd=copy,
        env={**tool_env(copy), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"{' '.join(argv)}: still running after {TIMEOUT} s\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _snapshot(copy: Path) -> tuple[dict[str, str], set[str]]:
    """Every file of the copy (relative path -> sha256; a symlink -> its target) and every folder."""
    files: dict[str, str] = {}
    folders: set[str] = set()
    for top, dirs, names in os.walk(copy):
        rel_top = Path(top).relative_to(copy)
        dirs[:] = [d for d in dirs if d != "__pycache__" and (rel_top / d).as_posix() not in SKIPPED]
        folders.update((rel_top / d).as_posix() for d in dirs)
        for name in names:
            path = Path(top) / name
            rel = (rel_top / name).as_posix()
            if path.is_symlink():
                files[rel] = f"symlink -> {os.readlink(path)}"
            else:
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files, folders


def _processes_in(copy: Path) -> dict[int, str]:
    """Processes (not this one) whose command line names the copy or whose working folder is in it."""
    found = {}
    where = str(copy)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
        except OSError:
            continue  # gone meanwhile
        if cmdline and (where in cmdline or cwd == where or cwd.startswith(where + os.sep)):
            found[int(entry.name)] = f"{cmdline} (cwd {cwd})"
    return found


def _leftovers(copy: Path, grace: float = 5.0) -> dict[int, str]:
    """The processes still in the copy after ``grace`` seconds (a kernel shutting down may take a moment)."""
    end = time.monotonic() + grace
    while True:
        found = _processes_in(copy)
        if not found or time.monotonic() > end:
            return found
        time.sleep(0.25)


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------------------------
# the tests


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("catalogue"))
    (repo / "params.yaml").write_text(_default_text())
    return repo


@pytest.mark.parametrize("case", CATALOGUE)
def test_bad_input_stops_with_one_clear_message(case: Case, copy: Path, tmp_path: Path):
    params = copy / "params.yaml"
    default = _default_text()
    written: list[Path] = []
    env = None
    try:
        if case.delete_params:
            params.unlink()
            env = {"NOPEEK_ROOT": str(copy)}  # so that finding the root does not fail first
        elif case.text is not None:
            params.write_text(case.text)
        elif case.append is not None:
            params.write_text(default + case.append)
        else:
            params.write_text(_params_text(case.overrides))
        if case.files is not None:
            written = case.files(copy / "data", tmp_path)

        before, folders_before = _snapshot(copy)
        out = _run(copy, *case.argv, env=env)
        after, folders_after = _snapshot(copy)
        leftover = _leftovers(copy)
    finally:
        params.write_text(default)
        for path in written:
            path.unlink(missing_ok=True)

    # keep the next cases independent of this one: remove what the run added, stop what it left running
    added = sorted(set(after) - set(before))
    for rel in added:
        (copy / rel).unlink(missing_ok=True)
    for rel in sorted(folders_after - folders_before, key=len, reverse=True):
        shutil.rmtree(copy / rel, ignore_errors=True)
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    last = _last_line(out.stderr)
    problems = []
    if out.returncode != 2:
        problems.append(f"exit code {out.returncode}, expected 2")
    if "Traceback" in out.stderr:
        problems.append("a Python traceback on stderr")
    if not last.startswith("error:"):
        problems.append("the last stderr line does not start with 'error:'")
    missing = [s for s in case.expected if s not in last]
    if missing:
        problems.append(f"the last stderr line lacks {missing}")
    problems += [f"stderr shows {s!r}" for s in case.absent if s in out.stderr]
    problems += [
        f"stderr names {s!r} {out.stderr.count(s)} times, expected once" for s in case.once if out.stderr.count(s) != 1
    ]
    changed = sorted(rel for rel in set(before) & set(after) if before[rel] != after[rel])
    deleted = sorted(set(before) - set(after))
    if added or changed or deleted:
        problems.append(f"files of the copy: added {added}, changed {changed}, deleted {deleted}")
    if leftover:
        problems.append(f"processes left behind: {leftover}")
    assert not problems, (
        f"last stderr line: {last!r}\n" + "\n".join(problems) + f"\n--- stderr (end)\n{out.stderr[-4000:]}"
    )


def test_a_corrected_run_then_succeeds(copy: Path):
    params = copy / "params.yaml"
    small = {"data": {"n_train": 60, "n_test": 30}, "attack": {"classifier_epochs": 1}}
    params.write_text(_params_text(small))
    try:
        out = _run(copy, "prepare")
    finally:
        params.write_text(_default_text())
        for rel in ("results/prepared", "results/classifier"):
            shutil.rmtree(copy / rel, ignore_errors=True)
        (copy / "results" / "notebooks" / "prepare.ipynb").unlink(missing_ok=True)
    assert out.returncode == 0, f"--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-4000:]}"
