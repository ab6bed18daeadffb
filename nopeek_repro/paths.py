"""Every path of the kit, from the repository root.

The root is found the same way under DVC, papermill, nbval and a hand-started Jupyter: the
``NOPEEK_ROOT`` environment variable, else the first folder at or above the current directory that
holds both ``dvc.yaml`` and ``params.yaml`` (DVC starts every stage in its folder), else DVC's
``DVC_ROOT``. Not ``DVC_ROOT`` first: a queued or ``--temp`` ``dvc exp run`` runs each stage in a copy
under ``.dvc/tmp/exps/`` while ``DVC_ROOT`` still names the workspace, whose results it would overwrite.
Layout::

    data/                       raw data, tracked by data.dvc (nothing else writes here)
    results/prepared/           the seeded train/test split (prepare stage)
    results/classifier/         the attack-accuracy classifier, trained on clean images (prepare stage)
    results/models/<run>/       trained client/server weights and per-epoch history, per seed
    results/attacks/<run>/      decoder-attack metrics and example reconstructions
    results/records/            per-stage JSON records: medians and per-seed values of every number
    results/metrics.json        the key numbers per model (``dvc metrics show``, ``dvc exp show``)
    results/plots/              CSV files behind ``dvc plots show``
    results/notebooks/          the executed notebooks, one per stage and sweep value (DVC cache)
    notebooks/NN_name.py        the notebooks' sources (jupytext percent scripts)
    notebooks/NN_name.ipynb     the default run's executed notebooks, one per source (committed)
    tests/notebooks/            the smoke-run references that nbval re-runs
    results/summary.csv         one row per trained model and seed
    results/leak_sweep.csv      attack scores per model, seed and leak fraction
    results/tradeoff.csv        attack MSE and test accuracy per model and seed (a DVC plot)
    results/history.csv         every model's and seed's per-epoch history (DVC plots)
    results/report.md           the replication report: the paper's claims against this run
    results/study/<axis>.csv    the design-space study, one axis per stage (opt-in, committed)
    results/study.csv, study.md the study's every point and seed, and the report's study section
    figures/                    the PNG figures the README shows
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_FILE = "mnist_5k.csv.gz"


def find_root(start: Path | None = None) -> Path:
    """The repository root (see module docstring); raises if none is found."""
    if os.environ.get("NOPEEK_ROOT"):
        return Path(os.environ["NOPEEK_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "params.yaml").is_file():
            return folder
    if os.environ.get("DVC_ROOT"):  # last: a queued `dvc exp run` inherits the workspace's DVC_ROOT
        return Path(os.environ["DVC_ROOT"]).resolve()
    raise FileNotFoundError(
        f"no nopeek-repro checkout at or above {here}: expected dvc.yaml and params.yaml; "
        "run from inside the repository or set NOPEEK_ROOT"
    )


def resolve(path: str | Path, root: Path | None = None) -> Path:
    """An absolute path: relative paths are taken from the repository root."""
    p = Path(path)
    return p if p.is_absolute() else (root or find_root()) / p


def data_dir(root: Path | None = None) -> Path:
    return (root or find_root()) / "data"


def results_dir(root: Path | None = None) -> Path:
    return (root or find_root()) / "results"


def figures_dir(root: Path | None = None) -> Path:
    return (root or find_root()) / "figures"


def notebooks_dir(root: Path | None = None) -> Path:
    return (root or find_root()) / "notebooks"


def reference_notebooks_dir(root: Path | None = None) -> Path:
    """The smoke-run notebooks nbval compares (``tests/notebooks/``), apart from the readers' ``notebooks/``."""
    return (root or find_root()) / "tests" / "notebooks"


@dataclass(frozen=True)
class Layout:
    """Where a stage's files live (see :mod:`nopeek_repro.paths` for the tree)."""

    results: Path
    figures: Path

    @property
    def prepared(self) -> Path:
        return self.results / "prepared" / "split.npz"

    def model_dir(self, run: str) -> Path:
        return self.results / "models" / run

    def attack_dir(self, run: str) -> Path:
        return self.results / "attacks" / run

    def train_record(self, run: str) -> Path:
        return self.results / "records" / f"train-{run}.json"

    def attack_record(self, run: str) -> Path:
        return self.results / "records" / f"attack-{run}.json"

    @property
    def metrics(self) -> Path:
        return self.results / "metrics.json"

    def history(self, run: str) -> Path:
        return self.results / "plots" / f"history-{run}.csv"

    @property
    def classifier(self) -> Path:
        return self.results / "classifier"

    def leak_sweep(self, run: str) -> Path:
        return self.attack_dir(run) / "leak_sweep.csv"

    @property
    def leak_sweep_all(self) -> Path:
        return self.results / "leak_sweep.csv"

    @property
    def report(self) -> Path:
        return self.results / "report.md"

    @property
    def summary(self) -> Path:
        return self.results / "summary.csv"

    @property
    def summary_md(self) -> Path:
        return self.results / "summary.md"

    @property
    def tradeoff_plot(self) -> Path:
        return self.results / "tradeoff.csv"

    def study_axis(self, axis: str) -> Path:
        """One axis of the design-space study: every point and seed (:mod:`nopeek_repro.study`)."""
        return self.results / "study" / f"{axis}.csv"

    def study_history(self, axis: str) -> Path:
        return self.results / "study" / f"{axis}-history.csv"

    @property
    def study_table(self) -> Path:
        return self.results / "study.csv"

    @property
    def study_report(self) -> Path:
        """The replication report's study section (the figures stage appends it to ``report.md``)."""
        return self.results / "study.md"

    @property
    def history_all(self) -> Path:
        """Every model's and seed's per-epoch history in one table (``dvc plots show``'s curves)."""
        return self.results / "history.csv"
