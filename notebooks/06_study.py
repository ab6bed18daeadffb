# %% [markdown]
# # 6. The design-space study: one axis
#
# Does NoPeek fail, or does the setting? The default run sits in the hardest corner on every axis at
# once (the paper's non-squared distances, batch 64, ten classes, a one-block client with nothing at
# the cut, about 300 optimiser steps). This notebook runs **one axis** of the study: from the
# reference setting it changes one setting (the `axis`) to each of its values, and at each trains
# the baseline and NoPeek at every `study.alpha_dcor`, with every seed, then attacks each model with
# the strongest of the kit's attacks (the main protocol of notebook 4).
#
# Per model and seed: validation and test accuracy; DCOR(X, Z) over the test set and per
# training-size batch (V-statistic, Euclidean distances) with their label-only floors; the
# bias-corrected dCor²_U; the strongest attack's MSE divided by the no-information attack's
# (`privacy`: 1 = the attacker learned nothing), on the test part and on the validation part (what
# notebook 7 selects on); the attack accuracy; whether the model collapsed to chance.
#
# `python3 kit.py study` runs every axis (`python3 kit.py study --axis AXIS` one of them). The study's
# stages live in `study/dvc.yaml`, so a plain `dvc repro` (the default run) never starts it.

# %% tags=["parameters"]
# Smoke values: one axis, one NoPeek weight, one seed, one epoch. `dvc repro` passes every section
# of params.yaml whole; a key left out takes the default run's value.
axis = "at_cut"
study = {"alpha_dcor": [30], "seeds": [0], "at_cut": ["batchnorm"]}
train = {"epochs": 1}
attack = {"max_steps": 60, "eval_every": 10, "patience": 2}
data = {}
model = {}
nopeek = {}
noise = {}
leakage = {}
results = "results/smoke"

# %%
from nopeek_repro import config, runtime
from nopeek_repro import study as design

params = config.validate(
    config.Params,
    dict(data=data, model=model, train=train, nopeek=nopeek, noise=noise, attack=attack, leakage=leakage, study=study),
)
layout = runtime.make_layout(results)
table = design.run_axis(layout, params, axis)

# %% [markdown]
# Every model of this axis, one row per setting, `alpha_dcor` and seed (`privacy`: the strongest
# attack's test MSE over the no-information attack's).

# %%
# NBVAL_CHECK_OUTPUT
cols = ["setting", "alpha_dcor", "seed", "val_accuracy", "test_accuracy", "leakage_dcor", "batch_dcor",
        "privacy", "attack_accuracy", "collapsed"]
print(table[cols].round(3).to_string(index=False))
