"""Run one pipeline stage: validate ``params.yaml``, then execute its notebook with papermill.

``dvc.yaml`` calls every stage the same way::

    python -m nopeek_repro.pipeline STAGE [ITEM]

The runner (1) reads and validates the whole ``params.yaml`` and stops with one clear message and
exit code 2 on a bad value, before any kernel starts; (2) builds the notebook's parameters as real
Python values (lists and booleans stay lists and booleans); (3) reads the jupytext source
``notebooks/NN_name.py``; (4) executes it with papermill in the project's Jupyter kernel,
writing ``results/notebooks/STAGE[-ITEM].ipynb`` without run-to-run timing metadata; (5) if the
notebook fails, removes the stage's half-written outputs and exits 1 with the notebook's error; the same
when it is interrupted or ``dvc`` goes away (:mod:`nopeek_repro.supervise`; exit 130).

``python -m nopeek_repro.pipeline publish-notebooks`` (the last DVC stage) copies one executed
notebook per source to ``notebooks/NN_name.ipynb``: the default run's real outputs, what readers
open. ``python -m nopeek_repro.pipeline refresh-notebooks`` re-executes every notebook at its own
smoke defaults into ``tests/notebooks/NN_name.ipynb``: the references nbval re-runs and compares.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import paths, supervise
from .config import Params, ParamsError, load
from .datasets import DataError
from .defences import RunSpec, all_runs
from .paths import Layout

log = logging.getLogger("nopeek_repro.pipeline")
KERNEL = "nopeek-repro"


@dataclass(frozen=True)
class Stage:
    notebook: str
    parameters: Callable[[Params, str | None], dict[str, Any]]
    outputs: Callable[[Layout, Params, str | None], list[Path]]
    item_kind: str | None = None  # what ITEM means, or None when the stage takes none


RUNTIME_KEYS = {"threads", "device"}
"""The ``train`` settings the prepare and attack stages use (how they run, not what is trained)."""


def _train_common(p: Params) -> dict[str, Any]:
    return {
        "train": p.train.model_dump(),
        "model": p.model.model_dump(),
        "leakage": p.leakage.model_dump(),
        "results": "results",
    }


def _spec(stage: str, item: str | None) -> RunSpec:
    if stage.endswith("baseline"):
        return RunSpec()
    value = _number(item, "alpha_dcor" if stage.endswith("nopeek") else "noise")
    return RunSpec("nopeek", alpha_dcor=value) if stage.endswith("nopeek") else RunSpec("noise", noise=value)


def _number(item: str | None, name: str) -> float:
    try:
        return float(item)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParamsError(f"stage item: {name} must be a number, got {item!r}") from None


def _train_params(stage: str) -> Callable[[Params, str | None], dict[str, Any]]:
    def build(p: Params, item: str | None) -> dict[str, Any]:
        spec = _spec(stage, item)
        extra: dict[str, Any] = (
            {}
            if stage == "train_baseline"
            else dict(defence=spec.defence, alpha_dcor=spec.alpha_dcor, noise=spec.noise)
        )
        if stage == "train_nopeek":
            extra["distance"] = p.nopeek.distance  # the statistic the client trains with
        return {**extra, **_train_common(p)}

    return build


def _train_outputs(stage: str) -> Callable[[Layout, Params, str | None], list[Path]]:
    def outs(layout: Layout, p: Params, item: str | None) -> list[Path]:
        name = _spec(stage, item).name
        return [layout.model_dir(name), layout.train_record(name), layout.history(name)]

    return outs


def _attack_params(stage: str) -> Callable[[Params, str | None], dict[str, Any]]:
    def build(p: Params, item: str | None) -> dict[str, Any]:
        return {
            "runs": [_spec(stage, item).name],
            "attack": p.attack.model_dump(),
            "train": p.train.model_dump(include=RUNTIME_KEYS),
            "results": "results",
        }

    return build


def _attack_outputs(stage: str) -> Callable[[Layout, Params, str | None], list[Path]]:
    def outs(layout: Layout, p: Params, item: str | None) -> list[Path]:
        name = _spec(stage, item).name
        return [layout.attack_dir(name), layout.attack_record(name)]  # the leak sweep lives in attack_dir

    return outs


FIGURES = ("tradeoff", "reconstructions", "leakage_vs_alpha", "training_curves", "leak_sweep", "collapse_diagnostics")
"""The figures stage's figures (``figures/<name>.png``)."""
STUDY_FIGURES = ("study_axes", "study_collapse")
"""The study report stage's figures (``figures/<name>.png``)."""


def _axis(item: str | None) -> str:
    from .study import AXIS_NAMES

    if item not in AXIS_NAMES:
        raise ParamsError(f"stage item: study axis {item!r} is unknown; allowed: {', '.join(AXIS_NAMES)}")
    return item


def runs_of(p: Params) -> list[RunSpec]:
    """Every trained model of the pipeline: baseline, NoPeek sweep, noise sweep."""
    return all_runs(list(p.nopeek.alpha_dcor), list(p.noise.scale))


JUDGE_KEYS: tuple[str, ...] = (
    "classifier_epochs",
    "classifier_patience",
    "classifier_seed",
    "classifier_lr",
    "batch_size",
)
"""The ``attack`` settings the prepare stage uses (the judge's): all it is given, and what dvc.yaml lists for it,
so its executed notebook never shows a decoder setting that DVC does not track for it."""


STAGES: dict[str, Stage] = {
    "prepare": Stage(
        "01_prepare_data",
        lambda p, _: {
            "data": p.data.model_dump(),
            "attack": p.attack.model_dump(include=set(JUDGE_KEYS)),
            "train": p.train.model_dump(include=RUNTIME_KEYS),
            "results": "results",
        },
        lambda layout, p, _: [layout.prepared.parent, layout.classifier],
    ),
    "train_baseline": Stage("02_train_baseline", _train_params("train_baseline"), _train_outputs("train_baseline")),
    "train_nopeek": Stage(
        "03_train_nopeek", _train_params("train_nopeek"), _train_outputs("train_nopeek"), "alpha_dcor"
    ),
    "train_noise": Stage("03_train_nopeek", _train_params("train_noise"), _train_outputs("train_noise"), "noise"),
    "attack_baseline": Stage("04_attack", _attack_params("attack_baseline"), _attack_outputs("attack_baseline")),
    "attack_nopeek": Stage(
        "04_attack", _attack_params("attack_nopeek"), _attack_outputs("attack_nopeek"), "alpha_dcor"
    ),
    "attack_noise": Stage("04_attack", _attack_params("attack_noise"), _attack_outputs("attack_noise"), "noise"),
    "study": Stage(
        "06_study",
        lambda p, item: {"axis": _axis(item), **p.model_dump(), "results": "results"},
        lambda layout, p, item: [layout.study_axis(_axis(item)), layout.study_history(_axis(item))],
        "axis",
    ),
    "study_report": Stage(
        "07_study_report",
        lambda p, _: {"study": p.study.model_dump(), "results": "results", "figures_dir": "figures"},
        lambda layout, p, _: [
            layout.study_table,
            layout.study_report,
            *(layout.figures / f"{n}.png" for n in STUDY_FIGURES),
        ],
    ),
    "figures": Stage(
        "05_figures",
        lambda p, _: dict(runs=[r.name for r in runs_of(p)], results="results", figures_dir="figures"),
        lambda layout, p, _: [
            *(layout.figures / f"{n}.png" for n in FIGURES),
            layout.summary,
            layout.summary_md,
            layout.tradeoff_plot,
            layout.leak_sweep_all,
            layout.history_all,
            layout.metrics,
            layout.report,
        ],
    ),
}


def notebook_source(name: str, root: Path | None = None) -> Path:
    return paths.notebooks_dir(root) / f"{name}.py"


def read_notebook(source: Path) -> Any:
    """A jupytext percent script as an nbformat notebook with the project's kernel."""
    import jupytext

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": kernel_name(), "display_name": "Python (nopeek-repro)", "language": "python"}
    nb.metadata.pop("jupytext", None)
    _stable_ids(nb)
    return nb


def _stable_ids(nb: Any) -> None:
    """Cell ids from position (jupytext and papermill draw random ones), for byte-stable outputs."""
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"


def kernel_name() -> str:
    """The project's registered kernel, or this interpreter's own when it is not registered."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL in KernelSpecManager().find_kernel_specs():
        return KERNEL
    log.warning(
        "Jupyter kernel %r is not registered (run `python3 kit.py setup`); using this interpreter's python3", KERNEL
    )
    return "python3"


def coalesce_streams(nb: Any) -> None:
    """Merge consecutive stream outputs of the same name in every cell: how a kernel splits its
    stdout into messages depends on flush timing, what it printed does not."""
    for cell in nb.cells:
        merged: list[Any] = []
        for out in cell.get("outputs", []):
            if (
                merged
                and out.output_type == "stream"
                and merged[-1].output_type == "stream"
                and merged[-1].name == out.name
            ):
                merged[-1].text += out.text
            else:
                merged.append(out)
        if "outputs" in cell:
            cell.outputs = merged


def strip_volatile(nb_path: Path) -> None:
    """Remove papermill's timing metadata and merge split stream outputs, so an executed notebook
    is byte-stable across runs."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    coalesce_streams(nb)
    pm = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "exception", "input_path", "output_path"):
        pm.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for key in ("start_time", "end_time", "duration", "exception", "status"):
            cell.metadata.get("papermill", {}).pop(key, None)
    _stable_ids(nb)
    nbformat.write(nb, nb_path)


KERNEL_ARGUMENTS = (
    "--IPKernelApp.quiet=False",  # echo the notebook's output (prints, log records) to this terminal
    "--IPKernelApp.capture_fd_output=False",  # keep the kernel's own stderr the terminal: live progress
    "--IPKernelApp.log_level=CRITICAL",  # not the kernel's "running over TCP without encryption" (loopback only)
)
"""How the stage runner starts the kernel, so that a stage shows in the terminal what its notebook
shows, and live progress lines (:class:`nopeek_repro.runtime.Progress`); nbval and Jupyter start
it without them."""


def execute(source: Path, output: Path, parameters: dict[str, Any] | None, cwd: Path) -> None:
    """Execute a jupytext notebook with papermill into ``output`` (parameters as Python values),
    echoing its output and progress to this process's terminal (:data:`KERNEL_ARGUMENTS`)."""
    import os

    import papermill as pm

    from .runtime import TERMINAL_ENV

    output.parent.mkdir(parents=True, exist_ok=True)
    before = os.environ.get(TERMINAL_ENV)
    os.environ[TERMINAL_ENV] = "1"  # the kernel inherits it; restored below for whatever runs next here
    try:
        pm.execute_notebook(
            read_notebook(source),
            str(output),
            parameters=parameters or {},
            kernel_name=kernel_name(),
            cwd=str(cwd),
            log_output=False,  # the kernel echoes its output itself
            progress_bar=False,
            report_mode=False,
            extra_arguments=list(KERNEL_ARGUMENTS),
        )
    finally:
        if before is None:
            os.environ.pop(TERMINAL_ENV, None)
        else:
            os.environ[TERMINAL_ENV] = before
    strip_volatile(output)


BAD_INPUT = frozenset({"ParamsError", "DataError", "TrainingDiverged", "UnsafeFileError"})
"""Errors inside a notebook that mean bad settings or data: the runner exits 2 for them, as for its own checks."""


class StageFailed(Exception):
    """A stage's notebook failed: its half-written outputs are gone, its git-committed outputs restored."""

    def __init__(self, stage: str, error: BaseException, restored: list[str], cached: bool) -> None:
        name = getattr(error, "ename", None) or type(error).__name__
        value = getattr(error, "evalue", str(error))
        after = []
        if restored:
            after.append(f"its committed {', '.join(restored)} restored from git")
        if cached:
            after.append(f"`dvc checkout {stage}` brings back its last cached outputs")
        super().__init__(f"stage {stage} failed: {name}: {value}" + (f" ({'; '.join(after)})" if after else ""))
        self.interrupted = name == "KeyboardInterrupt"
        self.bad_input = name in BAD_INPUT


def _git_restore(outputs: list[Path], root: Path) -> list[str]:
    """Check out from git HEAD every output file that git tracks (the committed ones a failed stage removed);
    returns their paths relative to ``root`` (none when ``root`` is not a git checkout)."""
    import subprocess

    rel = [str(o.relative_to(root)) for o in outputs if o.is_relative_to(root)]
    if not rel or not (root / ".git").exists():
        return []
    listed = subprocess.run(["git", "ls-files", "-z", "--", *rel], cwd=root, capture_output=True, text=True)
    tracked = [f for f in listed.stdout.split("\0") if f]
    if listed.returncode != 0 or not tracked:
        return []
    done = subprocess.run(["git", "checkout", "HEAD", "--", *tracked], cwd=root, capture_output=True, text=True)
    return tracked if done.returncode == 0 else []


def remove_stale_runs(layout: Layout, keep: list[RunSpec]) -> list[Path]:
    """Remove what runs no longer in the sweep left behind (models, attacks, records, plot files, executed
    notebooks), so they do not linger in ``results/`` or in ``dvc plots show``; returns what was removed."""
    names = {r.name for r in keep}
    found: list[tuple[str, Path]] = []
    for folder in (layout.results / "models", layout.results / "attacks"):
        found += [(d.name, d) for d in folder.glob("*") if d.is_dir()]
    for kind in ("train", "attack"):
        found += [(f.stem[len(kind) + 1 :], f) for f in (layout.results / "records").glob(f"{kind}-*.json")]
    found += [(f.stem[len("history-") :], f) for f in (layout.results / "plots").glob("history-*.csv")]
    for f in (layout.results / "notebooks").glob("*_*-*.ipynb"):
        stage, _, item = f.stem.partition("-")
        if stage.split("_", 1)[-1] in ("nopeek", "noise"):
            try:
                found.append((_spec(stage, item).name, f))
            except (ParamsError, ValueError):
                continue
    removed = []
    for name, path in found:
        try:
            stale = RunSpec.from_name(name).name not in names
        except ValueError:
            continue  # not a run's file
        if stale:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path)
    if removed:
        log.warning(
            "removed %d files of runs no longer in the sweep: %s",
            len(removed),
            ", ".join(sorted({p.name for p in removed})),
        )
    return removed


def run_stage(stage: str, item: str | None = None, root: Path | None = None) -> Path:
    """Validate params, execute the stage's notebook; on failure (or Ctrl-C) remove its half-written outputs,
    restore its git-committed ones and raise :class:`StageFailed`. Returns the executed notebook."""
    root = root or paths.find_root()
    if stage not in STAGES:
        raise ParamsError(f"stage {stage!r} is unknown; stages are: {', '.join(STAGES)}")
    spec = STAGES[stage]
    if (spec.item_kind is None) != (item is None):
        raise ParamsError(
            f"stage {stage} takes {'no item' if spec.item_kind is None else 'one item (' + spec.item_kind + ')'}"
        )
    params = load(root / "params.yaml")
    if stage.startswith("train_") or stage == "prepare":
        check_device(params, root, warn=stage.startswith("train_"))
    parameters = spec.parameters(params, item)
    layout = Layout(root / "results", root / "figures")
    output = root / "results" / "notebooks" / (f"{stage}-{item}.ipynb" if item is not None else f"{stage}.ipynb")
    if stage == "figures":
        remove_stale_runs(layout, runs_of(params))
    try:
        execute(notebook_source(spec.notebook, root), output, parameters, cwd=root)
        if supervise.stop_requested():  # the kernel ignored the interrupt (between cells) and finished
            raise KeyboardInterrupt
    except BaseException as err:
        outputs = spec.outputs(layout, params, item)
        with supervise.held():
            if supervise.stop_requested():
                supervise.end_children()  # a kernel that papermill did not get to shut down
            for out in outputs:
                if out.is_dir():
                    shutil.rmtree(out, ignore_errors=True)
                elif out.exists():
                    out.unlink()
            if output.exists():
                output.unlink()
            restored = _git_restore(outputs, root)
        name = stage if item is None else f"{stage}@{item}"
        if stage.startswith("study"):
            name = f"study/dvc.yaml:{name}"
        cached = any(str(o.relative_to(root)) not in restored for o in outputs if o.is_relative_to(root))
        raise StageFailed(name, err, restored, cached) from err
    return output


def check_device(params: Params, root: Path, warn: bool = True) -> None:
    """Stop on ``train.device: cuda`` without a GPU; with ``auto`` on a CPU-only machine, warn with a run-time estimate."""
    if params.train.device == "cpu":
        return  # nothing to check (and no torch import: the runner starts every stage)
    import torch

    from .runtime import resolve_device

    resolve_device(params.train.device)  # ParamsError for cuda without a GPU
    if warn and params.train.device == "auto" and not torch.cuda.is_available():
        seconds = estimate(params, root, n_models=1)
        log.warning(
            "train.device is 'auto' but no GPU is available: this stage trains on the CPU; estimated %s "
            "(a few steps timed now; the whole pipeline: `python -m nopeek_repro.pipeline estimate`)",
            _duration(seconds),
        )


def estimate(params: Params, root: Path, n_models: int | None = None) -> float:
    """Estimated training time in seconds of ``n_models`` models (default: every model of the pipeline) on this machine."""
    from . import data, train
    from .paths import Layout

    layout = Layout(root / "results", root / "figures")
    if layout.prepared.is_file():
        split = data.load_split(layout.prepared)
    else:
        split = data.prepare_from_params(params.data, paths.data_dir(root))
    n = len(runs_of(params)) if n_models is None else n_models
    return train.estimate_seconds(split, params.train, params.model, n, device=params.train.device)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def published(p: Params) -> dict[str, str]:
    """Which executed stage notebook (``results/notebooks/``) becomes which ``notebooks/NN_name.ipynb``:
    one per notebook; for the sweeps, NoPeek at the sweep's largest alpha_dcor (uniform noise at its
    largest b when there is no NoPeek sweep)."""
    if p.nopeek.alpha_dcor:
        sweep = f"nopeek-{max(p.nopeek.alpha_dcor):g}"
    elif p.noise.scale:
        sweep = f"noise-{max(p.noise.scale):g}"
    else:
        raise ParamsError("nopeek.alpha_dcor and noise.scale are both empty: no defended model to publish")
    return {
        "01_prepare_data": "prepare",
        "02_train_baseline": "train_baseline",
        "03_train_nopeek": f"train_{sweep}",
        "04_attack": f"attack_{sweep}",
        "05_figures": "figures",
    }


def publish_notebooks(root: Path | None = None) -> list[Path]:
    """Copy the executed notebooks of :func:`published` to ``notebooks/NN_name.ipynb`` (the DVC stage
    ``notebooks``): what a reader who opens ``notebooks/`` sees are the default run's real outputs."""
    root = root or paths.find_root()
    params = load(root / "params.yaml")
    written = []
    for name, stage in published(params).items():
        source = root / "results" / "notebooks" / f"{stage}.ipynb"
        if not source.is_file():
            raise FileNotFoundError(f"{source}: executed notebook missing; run its stage first (dvc repro)")
        target = paths.notebooks_dir(root) / f"{name}.ipynb"
        shutil.copyfile(source, target)
        written.append(target)
    return written


def refresh_notebooks(root: Path | None = None) -> list[Path]:
    """Re-execute every notebook at its smoke defaults into ``tests/notebooks/NN_name.ipynb``: the
    references nbval re-runs and compares (not results: the readers' notebooks are :func:`publish_notebooks`')."""
    root = root or paths.find_root()
    written = []
    for source in sorted(paths.notebooks_dir(root).glob("[0-9][0-9]_*.py")):
        target = paths.reference_notebooks_dir(root) / f"{source.stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        execute(source, target, None, cwd=root)
        _clean_reference(target)
        written.append(target)
    return written


def _clean_reference(nb_path: Path) -> None:
    """Reference notebooks keep outputs but no papermill or jupytext metadata (not paired: their
    source is ``notebooks/NN_name.py``, and a test checks that their cells are its cells)."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("jupytext", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, nb_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nopeek_repro.pipeline", description=__doc__.splitlines()[0])
    ap.add_argument("stage", help=f"one of: {', '.join(STAGES)}; or publish-notebooks, refresh-notebooks, estimate")
    ap.add_argument("item", nargs="?", help="the sweep value for train_/attack_ nopeek (alpha_dcor) and noise (b)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.stage == "refresh-notebooks":
            for p in refresh_notebooks():
                print(p)
        elif args.stage == "publish-notebooks":
            for p in publish_notebooks():
                print(p)
        elif args.stage == "estimate":
            import torch

            root = paths.find_root()
            params = load(root / "params.yaml")
            seconds = estimate(params, root)
            what = (
                f"{_duration(seconds)} of training ({len(runs_of(params))} models x {len(params.train.seeds)} seeds x "
                f"{params.train.epochs} epochs, from a few steps timed now)"
            )
            if params.train.device != "cpu" and not torch.cuda.is_available():
                print(
                    f"warning: no GPU on this machine: train.device = {params.train.device!r} runs on the CPU; "
                    f"estimated {what}",
                    file=sys.stderr,
                )
            else:
                where = "GPU" if params.train.device != "cpu" else "CPU"
                print(f"estimated {what} on this machine's {where}")
        else:
            supervise.end_with_owner()
            print(run_stage(args.stage, args.item))
    except (ParamsError, FileNotFoundError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StageFailed as err:
        if err.interrupted:
            print(f"interrupted; partial outputs of stage {args.stage} removed", file=sys.stderr)
            return 130
        print(f"error: {err}", file=sys.stderr)
        return 2 if err.bad_input else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # papermill's PapermillExecutionError and friends
        name = getattr(err, "ename", type(err).__name__)
        value = getattr(err, "evalue", str(err))
        print(f"error: stage {args.stage} failed: {name}: {value}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["STAGES", "publish_notebooks", "published", "refresh_notebooks", "run_stage", "runs_of"]
