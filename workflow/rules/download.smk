# Pretraining pairs: URL/caption lists (CC3M, CC12M, YFCC14M, RedCaps) -> webdataset shards in img2dataset's layout,
# one job per dataset of the preset's `pairs` section (groupvit download-pairs; README "Real data").
#
# A download enters the DAG only when the preset trains on webdataset shards, data.shards names shards inside the
# dataset's folder and some of them are missing (groupvit.data.pairs.layout.datasets_to_download); the synthetic
# presets never see this rule. Only the done file is declared: Snakemake deletes the declared outputs of a failed
# or incomplete job, and days of finished shards must survive a kill (the downloader skips them on the rerun).
# The url lists are not declared as inputs: they are placed by hand (their terms must be accepted), and a dry run
# of the paper preset should show the whole plan; a missing list stops the job with its path in the log.
# The job always runs in the main environment; with pairs.backend img2dataset it calls the separate install named
# by pairs.img2dataset_executable (workflow/envs/img2dataset.yaml or the README's pip venv).
from groupvit.data.pairs.layout import (  # noqa: E402
    DONE_FILE,
    content_settings,
    dataset_dir,
    datasets_to_wait_for,
)

PAIRS = {dataset.name: dataset for dataset in EXP.pairs.datasets}
PAIRS_DONE = f"{dataset_dir(EXP.pairs, PRESET, '{pairs}')}/{DONE_FILE}"

# Pretraining also waits for the datasets whose shards are missing, and keeps the done files of finished downloads as
# inputs (without them the input set would change after the download, and Snakemake would retrain). This file is
# included before pretrain.smk, whose rule takes train_data_inputs (common.smk) when it is parsed.
_train_data_inputs_without_pairs = train_data_inputs
_pairs_to_wait_for = datasets_to_wait_for(EXP.pairs, PRESET, EXP.data.shards if EXP.data.source == "webdataset" else [])
train_data_inputs = lambda wildcards: _train_data_inputs_without_pairs(wildcards) + expand(  # noqa: E731
    PAIRS_DONE, pairs=_pairs_to_wait_for
)


# Like the eval-data downloads: compute nodes often have no internet, so under a cluster executor this job runs on
# the submitting host (drop this where compute nodes may download).
localrules:
    download_pairs,


rule download_pairs:
    output:
        done=PAIRS_DONE,
    params:
        config_args=CONFIG_ARGS,
        # a change of what decides the shards' contents reruns the job (which refuses to mix them in one folder)
        settings=lambda wildcards: digest({"dataset": PAIRS[wildcards.pairs], **content_settings(EXP.pairs)}),
    log:
        f"{LOGS}/download_pairs/{{pairs}}.log",
    wildcard_constraints:
        pairs="|".join(PAIRS) or "no_pairs_datasets",
    threads: max(1, EXP.pairs.processes)
    retries: 2
    conda:
        "../envs/groupvit.yaml"
    shell:
        "groupvit download-pairs {params.config_args} --dataset {wildcards.pairs} --processes {threads} > {log} 2>&1"
