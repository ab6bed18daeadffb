# %% [markdown]
# # 7. The design-space study: every axis, the chosen setting
#
# Notebook 6 ran each axis; this one puts them together. Each panel below is one axis: NoPeek's
# weight `alpha_dcor` on the x axis (0 is the baseline of that setting), one point per seed, the
# median as a line, the reference setting in grey. Top: test accuracy (dashed: chance). Middle: the
# strongest attack's test MSE over the no-information attack's (1 = the attacker learned nothing
# from Z). Bottom: the attack accuracy (the judge run on the reconstructions).
#
# The **chosen setting** is selected on the validation part only: among the NoPeek points whose
# median validation accuracy is within `study.accuracy_margin` of their own baseline's, the one with
# the highest validation privacy. The text below (the report's study section, `results/study.md`)
# states its test numbers and what the study says about each hypothesis.

# %% tags=["parameters"]
# Smoke values: the axis table that notebook 6 wrote at its own smoke defaults.
study = {"choose_from": ["reference", "at_cut"]}
results = "results/smoke"
figures_dir = "results/smoke/figures"

# %%
# %matplotlib inline
from IPython.display import Markdown

from nopeek_repro import config, runtime, study_report

study_params = config.validate(config.StudyParams, study, prefix="study")
layout = runtime.make_layout(results, figures_dir)
agg, figs = study_report.make_report(layout, study_params)

# %% [markdown]
# The medians per point (every seed is in `results/study.csv`).

# %%
# NBVAL_CHECK_OUTPUT
cols = ["axis", "setting", "alpha_dcor", "val_accuracy", "test_accuracy", "leakage_dcor", "privacy",
        "val_privacy", "attack_accuracy", "n_collapsed"]
print(agg[cols].round(3).to_string(index=False))

# %%
figs["study_axes"]

# %% [markdown]
# Over training, for every study model: the cut layer's standard deviation over the batch and the
# ratio of the DCOR term's gradient to the task's on the client's weights (collapsed seeds in red).

# %%
figs["study_collapse"]

# %%
Markdown(layout.study_report.read_text())
