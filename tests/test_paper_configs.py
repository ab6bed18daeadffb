"""The named parameter sets (params/*.yaml: the paper-scale ones and the pre-study default), run end to end at tiny size on the CPU.

Each set is loaded as it is, then shrunk (fewer images, epochs, seeds and sweep values, a shallower
ResNet, smaller images) and run through every stage function on small files written here in the
data set's real on-disk format. Everything else (architecture, cut, decoder kind, protocols) stays
as the set says.
"""

from __future__ import annotations

import pandas as pd
import pytest

from nopeek_repro import config, data, paths, stages
from nopeek_repro.defences import all_runs

from .test_datasets import make_cifar, make_mnist, make_utkface

TINY = {
    "data": {"n_train": 30, "n_test": 16, "val_fraction": 0.3},
    "train": {"seeds": [0], "epochs": 1, "batch_size": 8},
    "attack": {
        "max_steps": 4,
        "eval_every": 2,
        "batch_size": 8,
        "decoder_width": 8,
        "classifier_epochs": 1,
        "n_examples": 4,
        "leak_sweep": [0.25],
    },
}
DATA = {
    "cifar10-paper": lambda d: make_cifar(d, per_batch=6, n_test=16),
    "utkface-paper": lambda d: make_utkface(d, size=(40, 40)),
    "mnist-full": lambda d: make_mnist(d, n_train=24, n_test=16),
    "cut-block1": lambda d: data.materialise("mnist-sample", d),
}


def tiny(name: str, root) -> config.Params:
    p = config.load(root / "params" / f"{name}.yaml").model_dump()
    for section, values in TINY.items():
        p[section].update(values)
    p["nopeek"]["alpha_dcor"] = p["nopeek"]["alpha_dcor"][-1:]
    p["noise"]["scale"] = p["noise"]["scale"][:1]
    if p["model"]["arch"] != "cnn":
        p["model"]["depth"] = 11
        p["model"]["cut_layer"] = None  # depth 11 has one block per stage: the architecture's default cut
    if p["data"]["dataset"] == "utkface":
        p["data"]["image_size"] = 32
        p["data"]["n_train"], p["data"]["n_test"] = None, None
    return config.Params.model_validate(p)


def test_every_named_set_is_covered(root):
    assert sorted(p.stem for p in (root / "params").glob("*.yaml")) == sorted(DATA)


@pytest.mark.parametrize("name", sorted(DATA))
def test_named_set_runs_at_tiny_size(tmp_path, root, name):
    params = tiny(name, root)
    DATA[name](tmp_path / "data")
    layout = paths.Layout(tmp_path / "results", tmp_path / "figures")
    split = stages.prepare(layout, params.data, tmp_path / "data")
    assert split.image_shape[0] == (1 if params.data.dataset.startswith("mnist") else 3)
    stages.train_classifier(layout, params.train, params.attack)
    runs = all_runs(list(params.nopeek.alpha_dcor), list(params.noise.scale))
    for spec in runs:
        stages.train_run(layout, spec, params.train, params.model, params.leakage.block_size, progress=False)
        stages.attack_run(layout, spec.name, params.train, params.attack, progress=False)
    agg, figs = stages.make_figures(layout, runs)
    table = pd.read_csv(layout.summary)
    assert table.run.tolist() == [r.name for r in runs]
    measured = ["test_accuracy", "leakage_dcor", "recon_mse", "attack_accuracy"]
    if params.attack.authors_split is not None:
        measured.append("authors_recon_mse")
    assert table[measured].notna().all().all()
    assert "## The paper's claims" in layout.report.read_text()
    assert len(figs) == 6
