"""The design-space study's settings and one tiny axis run (nopeek_repro.study)."""

from __future__ import annotations

import pandas as pd
import pytest

from nopeek_repro import config, data, paths, study
from nopeek_repro.config import Params, ParamsError


def _changed(a: Params, b: Params) -> dict[str, object]:
    """The (section.key -> value in b) where b differs from a."""
    da, db = a.model_dump(), b.model_dump()
    return {f"{s}.{k}": db[s][k] for s in da if isinstance(da[s], dict) for k in da[s] if da[s][k] != db[s][k]}


@pytest.mark.parametrize("axis", [a for a in study.AXES if a not in ("task", "dataset")])
def test_each_axis_changes_exactly_its_one_setting(axis):
    params = Params()
    ref = study.reference(params)
    section, key = study.AXES[axis]
    for setting in study.settings(params, axis):
        changed = _changed(ref, setting.params)
        extra = {"train.client_lr": params.study.sgd_lr} if setting.label == "sgd" else {}
        assert changed == {f"{section}.{key}": getattr(setting.params, section).model_dump()[key], **extra}
        assert setting.label == str(getattr(params.study, axis)[study.settings(params, axis).index(setting)])


def test_task_axis_relabels_and_the_reference_is_the_pre_study_default():
    """The committed reference: the default run with params/cut-block1.yaml, the kit's default before the
    study (cut after block 1, alpha_dcor 10, 30, 100); only the cut and the sweep differ."""
    params = Params()
    (ref,) = study.settings(params, "reference")
    assert ref.task == "all" and ref.params == study.reference(params)
    assert _changed(params, ref.params) == {"model.cut_layer": "block1", "nopeek.alpha_dcor": [10, 30, 100]}
    (lt5,) = study.settings(params, "task")
    assert lt5.params == ref.params and lt5.task == "lt5"


def test_reference_overlay_applies_to_every_axis_but_the_dataset(tmp_path, monkeypatch):
    """study.reference: the old setting as an overlay; the dataset axis runs on the default run itself."""
    root = tmp_path
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text("")
    (root / "params").mkdir()
    (root / "params" / "old.yaml").write_text("train:\n  batch_size: 32\n")
    monkeypatch.setenv("NOPEEK_ROOT", str(root))
    params = config.validate(Params, {"study": {"reference": "params/old.yaml"}})
    (ref,) = study.settings(params, "reference")
    assert ref.params.train.batch_size == 32 and ref.params.study == params.study
    (cut,) = study.settings(params, "cut_layer")
    assert cut.params.train.batch_size == 32 and cut.params.model.cut_layer == "block2"
    (digits,) = study.settings(params, "dataset")
    assert digits.params.train.batch_size == params.train.batch_size == 64
    assert digits.params.data.dataset == "digits"


def test_bad_axis_and_bad_reference_are_named(tmp_path, monkeypatch):
    with pytest.raises(ParamsError, match="study axis 'depth': unknown; allowed: reference, cut_layer"):
        study.settings(Params(), "depth")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("")
    (tmp_path / "bad.yaml").write_text("train:\n  batch_size: 1\n")
    monkeypatch.setenv("NOPEEK_ROOT", str(tmp_path))
    params = config.validate(Params, {"study": {"reference": "bad.yaml"}})
    with pytest.raises(ParamsError, match=r"bad.yaml: train.batch_size = 1: Input should be greater than or equal"):
        study.reference(params)
    with pytest.raises(ParamsError, match="missing.yaml: parameters file not found"):
        study.reference(config.validate(Params, {"study": {"reference": "missing.yaml"}}))


def test_lt5_relabels_every_part_and_keeps_the_images(tiny_split):
    split = data.with_validation(tiny_split, 0.1, 0)
    binary = study._relabel(split, "lt5")
    assert binary.n_classes == 2 and binary.x_train is split.x_train
    for part in ("y_train", "y_val", "y_test"):
        assert getattr(binary, part).tolist() == (getattr(split, part) < 5).long().tolist()
    assert split.y_train.max() == 9  # the original split is untouched
    assert study._relabel(split, "all") is split


def test_one_tiny_axis_writes_every_seed_and_its_history(tiny_split, tmp_path, root):
    """A real run of one axis at toy size: the table has every point and seed and every metric, and reruns
    give the same numbers (the CPU is deterministic)."""
    from nopeek_repro import attacks, runtime

    layout = paths.Layout(tmp_path / "results", tmp_path / "figures")
    split = data.with_validation(tiny_split, 0.1, 0)
    data.save_split(split, layout.prepared)
    small = config.AttackParams(max_steps=20, eval_every=10, patience=1, classifier_epochs=1)
    train_p = config.TrainParams(seeds=[0], epochs=1, batch_size=32)
    runtime.set_determinism(small.classifier_seed, 2)
    judge, info = attacks.train_classifier(split, train_p, small)
    attacks.save_classifier(judge, info, layout.classifier)
    params = config.validate(
        Params,
        {
            "train": {"epochs": 1, "batch_size": 32, "seeds": [0]},
            "attack": small.model_dump(),
            "study": {"alpha_dcor": [5], "seeds": [0, 1], "at_cut": ["leakyrelu"]},
        },
    )
    table = study.run_axis(layout, params, "at_cut", progress=False)
    assert table[["setting", "alpha_dcor", "seed"]].values.tolist() == [
        ["leakyrelu", 0.0, 0],
        ["leakyrelu", 0.0, 1],
        ["leakyrelu", 5.0, 0],
        ["leakyrelu", 5.0, 1],
    ]
    assert table[study.METRICS].notna().all().all()
    assert ((table.privacy > 0) & (table.val_privacy > 0)).all()
    assert (table.chance == 0.1).all() and set(table.collapsed) <= {0, 1}
    saved = pd.read_csv(layout.study_axis("at_cut"))
    assert list(saved.columns) == study.IDS + study.METRICS and len(saved) == 4
    history = pd.read_csv(layout.study_history("at_cut"))
    assert len(history) == 4 and {"axis", "setting", "alpha_dcor", "seed", "z_std", "grad_ratio"} <= set(history)
    again = study.run_axis(layout, params, "at_cut", progress=False)
    pd.testing.assert_frame_equal(table, again)
