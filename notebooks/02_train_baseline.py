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

train_params = config.validate(config.TrainParams, dict(seeds=seeds, epochs=epochs, batch_size=batch_size, lr=lr,
                                                        lr_milestones=lr_milestones, lr_gamma=lr_gamma,
                                                        alpha_task=alpha_task, threads=threads, device=device))
model = config.validate(config.ModelParams, dict(arch=arch, depth=depth, cut_layer=cut_layer))
layout = stages.make_layout(results)
per_seed = stages.train_run(layout, RunSpec(), train_params, model, block_size)

# %% [markdown]
# Final test accuracy and leakage, one row per seed.

# %%
# NBVAL_CHECK_OUTPUT
print(per_seed.round(3).to_string())
