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
# The **uniform-noise** baseline (`defence = "noise"`) instead adds U(-b, b) to Z, in training
# and at test time.
#
# `dvc repro` runs this notebook once per value of `nopeek.alpha_dcor` and of `noise.scale` in
# `params.yaml`.

# %% tags=["parameters"]
defence = "nopeek"
alpha_dcor = 30.0
noise = 0.0
seeds = [0]
epochs = 1
batch_size = 64
lr = 1e-3
lr_milestones = []
lr_gamma = 0.1
alpha_task = 1.0
threads = 2
device = "cpu"
arch = "cnn"
depth = None
cut_layer = 1
block_size = 1024
results = "results/smoke"

# %%
from nopeek_repro import config, stages
from nopeek_repro.defences import RunSpec

spec = RunSpec(defence, alpha_dcor=alpha_dcor, noise=noise)
train_params = config.validate(config.TrainParams, dict(seeds=seeds, epochs=epochs, batch_size=batch_size, lr=lr,
                                                        lr_milestones=lr_milestones, lr_gamma=lr_gamma,
                                                        alpha_task=alpha_task, threads=threads, device=device))
model = config.validate(config.ModelParams, dict(arch=arch, depth=depth, cut_layer=cut_layer))
layout = stages.make_layout(results)
per_seed = stages.train_run(layout, spec, train_params, model, block_size)

# %% [markdown]
# Final test accuracy and leakage of this model, one row per seed. Compare with the baseline's
# in notebook 2.

# %%
# NBVAL_CHECK_OUTPUT
print(spec.name)
print(per_seed.round(3).to_string())
