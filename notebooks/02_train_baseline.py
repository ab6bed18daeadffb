# %% [markdown]
# # 2. Train the baseline split model
#
# Plain split learning (`alpha_dcor = 0`): the **client** runs the layers up to the cut and sends
# the cut-layer activations Z to the **server**, which runs the rest, computes the cross-entropy
# with the labels and sends back only dL/dZ. Nothing protects Z, so it stays strongly dependent
# on the raw input X: the leakage DCOR(X, Z) is high.
#
# Leakage is reported with two estimators over the whole test set: the paper's **DCOR**
# (biased V-statistic, Euclidean distances, square-root form) and the **bias-corrected dCor²**
# (U-statistic, Székely & Rizzo 2014), which is ~0 for independent data at any dimension.

# %% tags=["parameters"]
# Smoke values, one dict per params.yaml section; a key left out takes the default run's value.
# `dvc repro` passes the sections of params.yaml whole.
train = {"seeds": [0], "epochs": 1}
model = {}
leakage = {}
results = "results/smoke"

# %%
from nopeek_repro import config, stages
from nopeek_repro.defences import RunSpec

train_params = config.validate(config.TrainParams, train, prefix="train")
model_params = config.validate(config.ModelParams, model, prefix="model")
leakage_params = config.validate(config.LeakageParams, leakage, prefix="leakage")
layout = stages.make_layout(results)
per_seed = stages.train_run(layout, RunSpec(), train_params, model_params, leakage_params.block_size)

# %% [markdown]
# Final test accuracy and leakage, one row per seed.

# %%
# NBVAL_CHECK_OUTPUT
print(per_seed.round(3).to_string())
