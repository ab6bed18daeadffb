# %% [markdown]
# # 3. Train a defended split model: NoPeek (or uniform noise)
#
# **NoPeek** adds the distance correlation between the raw inputs and the cut-layer activations to
# the client's loss, per mini-batch:
#
# $$L = \alpha_{dcor}\,\mathrm{DCOR}(X, Z) + \alpha_{task}\,\mathrm{CE}(\hat Y, Y)$$
#
# The client computes the DCOR term itself, where the raw data lives; the server only ever sees Z
# and only ever returns dL/dZ. A larger `alpha_dcor` pushes Z to carry less about X, which should
# make the attacker's decoder fail, at some cost in accuracy.
#
# `distance = "squared"` (`nopeek.distance`) trains with the squared-distance statistic that
# several public implementations use instead (the square root of the RV coefficient); the leakage
# below is always the paper's DCOR. The **uniform-noise** baseline (`defence = "noise"`) instead
# adds U(-b, b) to Z, in training and at test time.
#
# `dvc repro` runs this notebook once per value of `nopeek.alpha_dcor` and of `noise.scale` in
# `params.yaml`.

# %% tags=["parameters"]
# Smoke values, one dict per params.yaml section; a key left out takes the default run's value.
# `dvc repro` passes the sections of params.yaml whole.
defence = "nopeek"
alpha_dcor = 30.0
noise = 0.0
distance = "euclidean"
train = {"seeds": [0], "epochs": 1}
model = {}
leakage = {}
results = "results/smoke"

# %%
from nopeek_repro import config, stages
from nopeek_repro.defences import RunSpec

spec = RunSpec(defence, alpha_dcor=alpha_dcor, noise=noise)
train_params = config.validate(config.TrainParams, train, prefix="train")
model_params = config.validate(config.ModelParams, model, prefix="model")
leakage_params = config.validate(config.LeakageParams, leakage, prefix="leakage")
layout = stages.make_layout(results)
per_seed = stages.train_run(layout, spec, train_params, model_params, leakage_params.block_size, distance=distance)

# %% [markdown]
# Final test accuracy and leakage of this model, one row per seed. Compare with the baseline's
# in notebook 2.

# %%
# NBVAL_CHECK_OUTPUT
print(spec.name)
print(per_seed.round(3).to_string())
