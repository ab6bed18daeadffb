"""params.yaml validation: every bad value gets one message naming the parameter and the range."""

from __future__ import annotations

import pytest
import yaml

from nopeek_repro import config
from nopeek_repro.config import ParamsError


def test_repository_params_are_valid(root):
    p = config.load(root / "params.yaml")
    assert p.data.dataset == "mnist-sample" and p.model.arch == "cnn" and p.train.device == "cpu"
    assert len(p.nopeek.alpha_dcor) >= 3 and len(p.noise.scale) >= 2 and len(p.train.seeds) >= 3


def _write(tmp_path, patch):
    raw = yaml.safe_load((config.paths.find_root() / "params.yaml").read_text())
    for dotted, value in patch.items():
        section, key = dotted.split(".")
        raw[section][key] = value
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    return f


@pytest.mark.parametrize(
    "patch,expected",
    [
        ({"nopeek.alpha_dcor": [10, -1]}, r"params.yaml: nopeek.alpha_dcor\[1\] = -1: must be greater than 0"),
        (
            {"data.dataset": "imagenet"},
            r"data.dataset = 'imagenet': Input should be 'mnist-sample', 'digits', 'mnist', 'fashion-mnist', 'cifar10', 'utkface', 'folder' or 'npz'",
        ),
        (
            {"data.dataset": "folder"},
            r"data.source = None: needed for data.dataset = 'folder': the path under data/ of a folder of class sub-folders",
        ),
        ({"model.arch": "vgg"}, r"model.arch = 'vgg': Input should be 'cnn', 'resnet29' or 'utkface'"),
        (
            {"model.cut_layer": "stage5.block0"},
            r"model.cut_layer = 'stage5.block0': not a cut point of cnn; allowed: block1, block2, or 1..2",
        ),
        ({"train.device": "tpu"}, r"train.device = 'tpu': Input should be 'cpu', 'cuda' or 'auto'"),
        ({"attack.decoder": "unet"}, r"attack.decoder = 'unet': Input should be 'simple' or 'resnet'"),
        ({"attack.leak_sweep": [0.1, 2]}, r"attack.leak_sweep\[1\] = 2: Input should be less than or equal to 1"),
        ({"attack.leak_fraction": 1.5}, r"attack.leak_fraction = 1.5: Input should be less than or equal to 1"),
        ({"attack.leak_fraction": 0}, r"attack.leak_fraction = 0: Input should be greater than 0"),
        ({"attack.patience": 0}, r"attack.patience = 0: Input should be greater than or equal to 1"),
        (
            {"attack.classifier_patience": 0},
            r"attack.classifier_patience = 0: Input should be greater than or equal to 1",
        ),
        ({"attack.holdout_fraction": 0.6}, r"attack.holdout_fraction = 0.6: Input should be less than or equal to 0.5"),
        ({"attack.max_steps": 0}, r"attack.max_steps = 0: Input should be greater than or equal to 1"),
        ({"attack.min_improvement": 1}, r"attack.min_improvement = 1: Input should be less than 1"),
        ({"attack.lr_drops": -1}, r"attack.lr_drops = -1: Input should be greater than or equal to 0"),
        ({"attack.decoder_lr": 0}, r"attack.decoder_lr = 0: Input should be greater than 0"),
        ({"attack.lr": 0.003}, r"attack.lr = 0.003: unknown parameter"),  # split into decoder_lr and classifier_lr
        ({"attack.ridge_grid": [0.1, -1]}, r"attack.ridge_grid\[1\] = -1: Input should be greater than 0"),
        ({"data.val_fraction": 0}, r"data.val_fraction = 0: Input should be greater than 0"),
        ({"data.val_fraction": 0.7}, r"data.val_fraction = 0.7: Input should be less than or equal to 0.5"),
        (
            {"attack.classifier_seed": 2},
            r"params.yaml: attack.classifier_seed = 2 is also in train.seeds \[0, 1, 2\]: "
            r"the judge must not share initial weights or batch order with an attacked model; allowed: any seed >= 0 "
            r"outside train.seeds",
        ),
        ({"train.batch_size": 1}, r"train.batch_size = 1: Input should be greater than or equal to 2"),
        ({"model.cut_layer": 3}, r"model.cut_layer = 3: not a cut point of cnn; allowed: block1, block2, or 1..2"),
        ({"train.epochs": "many"}, r"train.epochs = 'many': Input should be a valid integer"),
        ({"noise.scale": []}, r"noise.scale = \[\]: List should have at least 1 item"),
        (
            {"nopeek.alpha_dcor": [10, 1000.0]},
            r"nopeek.alpha_dcor\[1\] = 1000.0: write whole numbers without a decimal point \(1000, not 1000.0\)",
        ),
        ({"train.lerning_rate": 0.1}, r"train.lerning_rate = 0.1: unknown parameter"),
    ],
)
def test_bad_values_give_one_clear_message(tmp_path, patch, expected):
    with pytest.raises(ParamsError, match=expected) as info:
        config.load(_write(tmp_path, patch))
    assert "\n" not in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="parameters file not found"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        config.load(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ParamsError, match="must be a mapping"):
        config.load(bad)


def test_validate_names_the_source():
    with pytest.raises(ParamsError, match=r"^parameters: epochs = 0: Input should be greater than or equal to 1$"):
        config.validate(config.TrainParams, {"epochs": 0})


def test_resnet_cut_points_are_checked(tmp_path):
    raw = yaml.safe_load((config.paths.find_root() / "params.yaml").read_text())
    raw["model"] = {"arch": "resnet29", "depth": 29, "cut_layer": "stage2.block1"}
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    assert config.load(f).model.cut_layer == "stage2.block1"
    raw["model"]["cut_layer"] = "stage3.block0"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        ParamsError,
        match=r"model.cut_layer = 'stage3.block0': not a cut point of resnet29; allowed: stem, stage0.block0",
    ):
        config.load(f)


@pytest.mark.parametrize("name", ["cifar10-paper", "utkface-paper", "mnist-full"])
def test_named_parameter_sets_are_valid(root, name):
    p = config.load(root / "params" / f"{name}.yaml")
    assert p.train.device == "auto" and len(p.train.seeds) >= 3


def test_cifar10_paper_set_has_the_authors_settings(root):
    p = config.load(root / "params" / "cifar10-paper.yaml")
    assert (p.data.dataset, p.model.arch, p.model.depth, p.model.cut_layer) == (
        "cifar10",
        "resnet29",
        29,
        "stage2.block1",
    )
    assert (p.train.lr, p.train.batch_size, p.train.epochs, p.train.alpha_task) == (1e-4, 128, 200, 0.1)
    assert 1000 in p.nopeek.alpha_dcor and p.attack.decoder == "resnet" and p.attack.authors_split == 0.9


def test_config_cli_checks_a_file(tmp_path, capsys):
    assert config.main(["check", str(_write(tmp_path, {"train.epochs": 0}))]) == 2
    assert "train.epochs = 0: Input should be greater than or equal to 1" in capsys.readouterr().err


def test_params_yaml_is_written_from_the_models(root):
    """params.yaml is what `python -m nopeek_repro.config write` gives: every field once, valued by its default.

    A workspace holding an experiment (`dvc exp run -S ...` edits params.yaml) is checked through the
    committed file instead."""
    import subprocess

    expected = config.render(config.Params())
    text = (root / "params.yaml").read_text()
    if text != expected:
        head = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=root, capture_output=True, text=True)
        if head.returncode == 0:
            text = head.stdout
    assert text == expected, "params.yaml is out of date: run `python -m nopeek_repro.config write`"
    assert config.load(root / "params.yaml").model_dump().keys() == config.Params().model_dump().keys()


def test_render_round_trips_every_value():
    p = config.Params()
    assert config.validate(config.Params, yaml.safe_load(config.render(p))) == p
    assert "\n  client_lr:  " in config.render(p)  # null: the shared learning rate


def test_dvc_exp_run_set_param_changes_only_its_own_lines(tmp_path, root):
    """`dvc exp run -S` rewrites params.yaml through DVC's own YAML round trip (block lists, blank
    nulls); the generated layout is that one, so an experiment's params.yaml differs only where it set."""
    import difflib

    from dvc.utils.hydra import apply_overrides

    f = tmp_path / "params.yaml"
    f.write_text(config.render(config.Params()))
    apply_overrides(str(f), ["train.epochs=10", "attack.authors_split=0.9", "nopeek.alpha_dcor=[1,3,10]"])
    diff = [
        line
        for line in difflib.unified_diff(
            config.render(config.Params()).splitlines(), f.read_text().splitlines(), lineterm="", n=0
        )
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert [d.split("#")[0].rstrip() for d in diff] == [
        "-  epochs: 5",
        "+  epochs: 10",
        "+  - 1",
        "-  - 30",
        "-  authors_split:",
        "+  authors_split: 0.9",
    ]
    assert config.load(f).nopeek.alpha_dcor == [1, 3, 10]


@pytest.mark.parametrize("name", ["cifar10-paper", "utkface-paper", "mnist-full", "cut-block1"])
def test_named_sets_are_overlays_of_what_differs(root, name):
    raw = yaml.safe_load((root / "params" / f"{name}.yaml").read_text())
    default = config.Params().model_dump()
    same = [f"{s}.{k}" for s, keys in raw.items() for k, v in keys.items() if default[s][k] == v]
    assert not same, f"params/{name}.yaml repeats default-run values: {same}"


def test_write_merges_an_overlay_and_refuses_a_bad_one(tmp_path, capsys):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("train:\n  epochs: 7\n")
    out = tmp_path / "params.yaml"
    assert config.main(["write", str(out), "--overlay", str(overlay)]) == 0
    merged = config.load(out)
    assert merged.train.epochs == 7 and merged.model_copy(update={"train": config.Params().train}) == config.Params()
    assert config.main(["write", str(out), "--check", "--overlay", str(overlay)]) == 0
    overlay.write_text("train:\n  epochs: 0\n")
    assert config.main(["write", str(out), "--overlay", str(overlay)]) == 2
    assert "o.yaml: train.epochs = 0: Input should be greater than or equal to 1" in capsys.readouterr().err
    assert config.load(out).train.epochs == 7  # left as it was
    overlay.write_text("trian:\n  epochs: 3\n")
    assert config.main(["write", str(out), "--overlay", str(overlay)]) == 2
    assert "o.yaml: trian: unknown section; allowed: data, model, train" in capsys.readouterr().err
