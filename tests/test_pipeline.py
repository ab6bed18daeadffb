"""The stage runner: parameters reach the notebooks as declared; bad input stops before any work."""

from __future__ import annotations

import ast
import subprocess
import sys

import jupytext
import pytest
import yaml

from nopeek_repro import config, pipeline
from nopeek_repro.pipeline import STAGES

from .conftest import tool_env


def _parameters_cell(notebook: str, root) -> dict:
    nb = jupytext.read(root / "notebooks" / f"{notebook}.py")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {
        t.id: ast.literal_eval(n.value)
        for n in ast.parse(cell.source).body
        if isinstance(n, ast.Assign)
        for t in n.targets
    }


@pytest.mark.parametrize("stage", list(STAGES))
def test_runner_passes_only_parameters_the_notebook_declares(stage, root):
    params = config.load(root / "params.yaml")
    item = None
    if STAGES[stage].item_kind == "alpha_dcor":
        item = str(params.nopeek.alpha_dcor[0])
    elif STAGES[stage].item_kind == "noise":
        item = str(params.noise.scale[0])
    elif STAGES[stage].item_kind == "axis":
        item = "batch_size"
    passed = STAGES[stage].parameters(params, item)
    declared = _parameters_cell(STAGES[stage].notebook, root)
    assert set(passed) <= set(declared), f"{stage}: not in the parameters cell: {set(passed) - set(declared)}"
    for key, value in passed.items():  # same Python types as the smoke defaults (lists stay lists)
        if declared[key] is not None and value is not None:
            assert isinstance(value, type(declared[key])) or (
                isinstance(declared[key], float) and isinstance(value, int)
            ), key


SECTION_MODELS = {name: type(getattr(config.Params(), name)) for name in config.Params.model_fields}


@pytest.mark.parametrize("stage", list(STAGES))
def test_notebooks_get_whole_sections_and_validate_them_whole(stage, root):
    """A section reaches a notebook as the model's own dump (so every field, including one added
    later), and the notebook validates that dict whole: no per-field copies anywhere."""
    item = {"alpha_dcor": "30", "noise": "2", "axis": "at_cut"}.get(STAGES[stage].item_kind or "")
    passed = STAGES[stage].parameters(config.Params(), item)
    source = (root / "notebooks" / f"{STAGES[stage].notebook}.py").read_text()
    sections = [name for name, value in passed.items() if isinstance(value, dict)]
    assert set(sections) <= set(SECTION_MODELS), stage
    whole_params = "config.validate(\n    config.Params," in source  # every section at once (the study)
    for name in sections:
        model = SECTION_MODELS[name].__name__
        each = f'config.validate(config.{model}, {name}, prefix="{name}")' in source
        assert each or (whole_params and f"{name}={name}" in source), (stage, name)
        whole = getattr(config.Params(), name).model_dump()
        assert passed[name] == {k: whole[k] for k in passed[name]}, (stage, name)
    assert set(passed) - set(sections) <= {
        "runs",
        "results",
        "figures_dir",
        "defence",
        "alpha_dcor",
        "noise",
        "distance",
        "axis",
    }


def test_a_field_added_to_a_model_reaches_the_stage_parameters():
    """What the runner passes is built from the models' fields, not from a list of names."""
    from pydantic import Field, create_model

    probe = create_model("ProbeTrain", __base__=config.TrainParams, probe=(int, Field(7)))
    params = config.Params.model_construct(**{**dict(config.Params()), "train": probe(probe=9)})
    for stage in ("train_baseline", "train_nopeek"):
        assert STAGES[stage].parameters(params, "30" if stage == "train_nopeek" else None)["train"]["probe"] == 9


def test_dvc_yaml_stages_are_the_runner_stages(root):
    """The runner's stages are those of dvc.yaml and study/dvc.yaml (the opt-in study, run in the root)."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    study = yaml.safe_load((root / "study" / "dvc.yaml").read_text())["stages"]
    assert all((st.get("do") or st)["wdir"] == ".." for st in study.values())
    assert not set(dvc) & set(study)
    dvc.update(study)
    assert dvc.pop("notebooks")["cmd"] == "python -m nopeek_repro.pipeline publish-notebooks"  # runs no notebook
    assert set(dvc) == set(STAGES)
    for name, stage in dvc.items():
        cmd = (stage.get("do") or stage)["cmd"]
        assert cmd.startswith(f"python -m nopeek_repro.pipeline {name}")
        assert ("foreach" in stage) == (STAGES[name].item_kind is not None)


def _fake_root(tmp_path, root, patch=None):
    raw = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in (patch or {}).items():
        s, k = dotted.split(".")
        raw[s][k] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "dvc.yaml").write_text((root / "dvc.yaml").read_text())
    return tmp_path


def _run(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "nopeek_repro.pipeline", *args],
        cwd=cwd,
        env=tool_env(cwd),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_param_stops_before_any_work(tmp_path, root):
    repo = _fake_root(tmp_path, root, {"nopeek.alpha_dcor": [10, -3]})
    proc = _run(["train_baseline"], repo)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: params.yaml: nopeek.alpha_dcor[1] = -3: must be greater than 0"
    assert not (repo / "results").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["train"], "stage 'train' is unknown; stages are: prepare, train_baseline"),
        (["train_nopeek"], "stage train_nopeek takes one item (alpha_dcor)"),
        (["prepare", "3"], "stage prepare takes no item"),
        (["train_noise", "big"], "stage item: noise must be a number, got 'big'"),
    ],
)
def test_bad_stage_or_item(tmp_path, root, args, message):
    proc = _run(args, _fake_root(tmp_path, root))
    assert proc.returncode == 2 and message in proc.stderr


def test_strip_volatile(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["papermill"] = {"start_time": "t", "duration": 1.0, "parameters": {"a": 1}}
    nb.cells[0].metadata["papermill"] = {"start_time": "t", "end_time": "u", "status": "completed"}
    nb.cells[0].metadata["execution"] = {"iopub.status.busy": "x"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    pipeline.strip_volatile(path)
    back = nbformat.read(path, as_version=4)
    assert back.metadata.papermill == {"parameters": {"a": 1}}
    assert back.cells[0].metadata == {"papermill": {}}


def test_estimate_warns_on_a_cpu_only_machine(tmp_path, root):
    """A set asking for a GPU (train.device: auto) on a machine without one: a warning with the estimate."""
    import torch

    from nopeek_repro import data

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    repo = _fake_root(tmp_path, root, {"train.device": "auto", "data.n_train": 64, "data.n_test": 32})
    data.materialise("mnist-sample", repo / "data")
    proc = _run(["estimate"], repo)
    assert proc.returncode == 0, proc.stderr
    assert "warning: no GPU on this machine: train.device = 'auto' runs on the CPU; estimated" in proc.stderr
    params = config.load(root / "params.yaml")
    n_models = 1 + len(params.nopeek.alpha_dcor) + len(params.noise.scale)
    assert f"{n_models} models x {len(params.train.seeds)} seeds x {params.train.epochs} epochs" in proc.stderr


def test_split_stream_outputs_are_merged():
    import nbformat

    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a\n"),
        nbformat.v4.new_output("stream", name="stdout", text="b\n"),
        nbformat.v4.new_output("stream", name="stderr", text="c\n"),
        nbformat.v4.new_output("stream", name="stdout", text="d\n"),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("x")])
    pipeline.coalesce_streams(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [
        ("stdout", "a\nb\n"),
        ("stderr", "c\n"),
        ("stdout", "d\n"),
    ]


@pytest.mark.slow
def test_a_new_field_reaches_the_executed_notebook_with_no_other_edit(repo_copy):
    """Add a field to a model (and nothing else), regenerate params.yaml, set it as an experiment
    would, run the real stages: the executed notebook received it and validated it."""
    import nbformat

    from .conftest import run

    cfg = repo_copy / "nopeek_repro" / "config.py"
    anchor = '    device: Device = Field("cpu"'
    assert anchor in cfg.read_text()
    cfg.write_text(
        cfg.read_text().replace(
            anchor, '    probe: int = Field(7, ge=0, description="a field added by the test")\n' + anchor, 1
        )
    )
    run([sys.executable, "-m", "nopeek_repro.config", "write"], repo_copy)
    assert "  probe: 7" in (repo_copy / "params.yaml").read_text()
    small = repo_copy / "small.yaml"
    small.write_text(
        yaml.safe_dump(
            {
                "data": {"n_train": 160, "n_test": 64},
                "attack": {"classifier_epochs": 1},
                "train": {"seeds": [0], "epochs": 1, "probe": 9},
            }
        )
    )
    run([sys.executable, "-m", "nopeek_repro.config", "write", "--overlay", "small.yaml"], repo_copy)
    for stage in ("prepare", "train_baseline"):
        run([sys.executable, "-m", "nopeek_repro.pipeline", stage], repo_copy)
    nb = nbformat.read(repo_copy / "results" / "notebooks" / "train_baseline.ipynb", as_version=4)
    injected = next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert '"probe": 9' in injected or "'probe': 9" in injected
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_runs_that_left_the_sweep_are_removed(tmp_path):
    """The figure stage's clean-up: every file of a run no longer in the sweep goes, the others stay."""
    from nopeek_repro import pipeline
    from nopeek_repro.defences import RunSpec
    from nopeek_repro.paths import Layout

    layout = Layout(tmp_path / "results", tmp_path / "figures")
    names = ["baseline", "nopeek-a3", "nopeek-a100", "noise-b4"]
    for name in names:
        for f in (layout.train_record(name), layout.attack_record(name), layout.history(name)):
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("{}")
        layout.model_dir(name).mkdir(parents=True)
        layout.attack_dir(name).mkdir(parents=True)
    notebooks = layout.results / "notebooks"
    notebooks.mkdir()
    for stem in ("train_nopeek-3", "attack_nopeek-100", "train_noise-4", "train_baseline", "prepare"):
        (notebooks / f"{stem}.ipynb").write_text("{}")
    keep = [RunSpec(), RunSpec("nopeek", alpha_dcor=3)]
    removed = pipeline.remove_stale_runs(layout, keep)
    assert len(removed) == 2 * 5 + 2
    left = sorted(p.relative_to(layout.results).as_posix() for p in layout.results.rglob("*") if p.is_file())
    assert left == [
        "notebooks/prepare.ipynb",
        "notebooks/train_baseline.ipynb",
        "notebooks/train_nopeek-3.ipynb",
        "plots/history-baseline.csv",
        "plots/history-nopeek-a3.csv",
        "records/attack-baseline.json",
        "records/attack-nopeek-a3.json",
        "records/train-baseline.json",
        "records/train-nopeek-a3.json",
    ]
    assert sorted(d.name for d in (layout.results / "models").iterdir()) == ["baseline", "nopeek-a3"]
