"""params.yaml validation: every bad value gets one message naming the parameter and the range."""

from __future__ import annotations

import pytest
import yaml

from nopeek_repro import config
from nopeek_repro.config import ParamsError


def test_repository_params_are_valid(root):
    p = config.load(root / "params.yaml")
    assert p.data.dataset == "mnist-sample"
    assert p.model.cut_layer in config.CUT_LAYERS
    assert len(p.nopeek.alpha_dcor) >= 3 and len(p.noise.scale) >= 2


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
        ({"nopeek.alpha_dcor": [10, -1]}, r"params.yaml: nopeek.alpha_dcor\[1\] = -1: Input should be greater than 0"),
        ({"data.dataset": "imagenet"}, r"data.dataset = 'imagenet': Input should be 'mnist-sample'"),
        ({"attack.leak_fraction": 1.5}, r"attack.leak_fraction = 1.5: Input should be less than or equal to 1"),
        ({"attack.leak_fraction": 0}, r"attack.leak_fraction = 0: Input should be greater than 0"),
        ({"train.batch_size": 1}, r"train.batch_size = 1: Input should be greater than or equal to 2"),
        ({"model.cut_layer": 3}, r"model.cut_layer = 3: Input should be 1 or 2"),
        ({"train.epochs": "many"}, r"train.epochs = 'many': Input should be a valid integer"),
        ({"noise.scale": []}, r"noise.scale = \[\]: List should have at least 1 item"),
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
