"""The notebooks: smoke references and published runs match their sources (fast); papermill smoke runs and
nbval (slow, real kernel)."""

from __future__ import annotations

import sys

import jupytext
import nbformat
import pytest

from .conftest import run

NOTEBOOKS = ["01_prepare_data", "02_train_baseline", "03_train_nopeek", "04_attack", "05_figures"]
STUDY_NOTEBOOKS = ["06_study", "07_study_report"]
"""The design-space study's notebooks: run by study/dvc.yaml, their executed copies in results/notebooks/."""


REFERENCES = "tests/notebooks"


@pytest.mark.parametrize("name", NOTEBOOKS + STUDY_NOTEBOOKS)
def test_reference_notebook_matches_its_source(root, name):
    """tests/notebooks/NN.ipynb (smoke outputs, what nbval checks) has exactly the cells of notebooks/NN.py."""
    src = jupytext.read(root / "notebooks" / f"{name}.py")
    ref = nbformat.read(root / REFERENCES / f"{name}.ipynb", as_version=4)
    assert [(c.cell_type, c.source) for c in src.cells] == [(c.cell_type, c.source) for c in ref.cells], (
        f"notebooks/{name}.ipynb is out of date: run `python -m nopeek_repro.pipeline refresh-notebooks`"
    )
    params = [c for c in ref.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    assert not any(o.output_type == "error" for c in ref.cells if c.cell_type == "code" for o in c.outputs)
    pngs = sum("image/png" in o.get("data", {}) for c in ref.cells if c.cell_type == "code" for o in c.outputs)
    assert pngs == {"01_prepare_data": 1, "04_attack": 1, "05_figures": 6, "07_study_report": 2}.get(name, 0)
    checked = [c for c in ref.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    progress = [o for c in checked for o in c.outputs if o.output_type == "display_data" and "image/png" not in o.data]
    assert not progress, "a progress line in a cell nbval checks: nbval ignores display updates (runtime.Progress)"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_published_notebook_is_the_default_run(root, name):
    """notebooks/NN.ipynb is the default run's executed notebook (the `notebooks` stage): the source's cells
    after papermill's injected parameters, which are params.yaml's, no errors, small enough to commit."""
    from nopeek_repro import config, pipeline

    path = root / "notebooks" / f"{name}.ipynb"
    src = jupytext.read(root / "notebooks" / f"{name}.py")
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert [(c.cell_type, c.source) for c in src.cells] == [(c.cell_type, c.source) for c in cells], (
        f"{path.name} is out of date: run `dvc repro`"
    )
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    assert path.stat().st_size < 1_000_000
    params = config.load(root / "params.yaml")
    stage = pipeline.published(params)[name]
    base, _, item = stage.partition("-")
    expected = pipeline.STAGES[base].parameters(params, item or None)
    assert nb.metadata.papermill.parameters == expected, f"{path.name} was run with other parameters"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "\r" not in text, "carriage-return debris from a progress bar"


@pytest.mark.slow
def test_every_notebook_runs_through_papermill(repo_copy):
    """Execute all seven notebooks, in order, at their tiny smoke defaults, with papermill."""
    run([sys.executable, "-m", "nopeek_repro.pipeline", "refresh-notebooks"], repo_copy)
    for name in NOTEBOOKS + STUDY_NOTEBOOKS:
        nb = nbformat.read(repo_copy / REFERENCES / f"{name}.ipynb", as_version=4)
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), name
    smoke = repo_copy / "results" / "smoke"
    assert (smoke / "summary.csv").is_file()
    assert sorted(p.name for p in (smoke / "figures").glob("*.png")) == [
        "collapse_diagnostics.png",
        "leak_sweep.png",
        "leakage_vs_alpha.png",
        "reconstructions.png",
        "study_axes.png",
        "study_collapse.png",
        "tradeoff.png",
        "training_curves.png",
    ]
    assert (smoke / "study.md").read_text().startswith("## The design-space study")
    assert (smoke / "report.md").is_file() and (smoke / "leak_sweep.csv").is_file()


NBVAL = [
    "-m",
    "pytest",
    "-p",
    "no:cacheprovider",
    "-o",
    "addopts=",
    "--nbval-lax",
    "--nbval-current-env",
    "--nbval-sanitize-with",
    "tests/nbval_sanitize.cfg",
    "-q",
]


@pytest.mark.slow
def test_nbval_on_the_reference_notebooks(repo_copy):
    """nbval re-runs the committed notebooks and compares every `# NBVAL_CHECK_OUTPUT` cell: the numbers
    behind each figure. A figure that no longer renders fails its cell."""
    proc = run([sys.executable, *NBVAL, f"{REFERENCES}/"], repo_copy, check=False)
    assert proc.returncode == 0, proc.stdout[-8000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


@pytest.mark.slow
def test_nbval_catches_a_changed_number(repo_copy):
    """The check has teeth: alter one printed number in a reference notebook and nbval fails."""
    path = repo_copy / REFERENCES / "01_prepare_data.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source)
    cell.outputs[0]["text"] = cell.outputs[0]["text"].replace("train 230 images", "train 231 images")
    assert "train 231 images" in cell.outputs[0]["text"], "the altered number must be in the checked output"
    nbformat.write(nb, path)
    proc = run([sys.executable, *NBVAL, f"{REFERENCES}/01_prepare_data.ipynb"], repo_copy, check=False)
    assert proc.returncode != 0 and "231" in proc.stdout
