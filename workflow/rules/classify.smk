# Zero-shot classification: one job per (trained variant, seed, source), then one table of all of them beside the
# paper's ImageNet top-1. Sources: the synthetic world's eval-split object crops when the preset scores the world;
# under a preset that scores real datasets (paper), every ImageNet-layout folder <eval_data.root>/classification/
# <name>/<class name>/<image> present when the DAG is built (ImageNet cannot be downloaded without accepting its
# terms, so it is never a missing input).
from groupvit.evaluation.classification_sources import (  # noqa: E402
    classification_settings,
    classification_sources,
)

CLASSIFY_SOURCES = classification_sources(EXP.eval.datasets, EXP.eval_data.root)
CLASSIFY_FILES = [f"{RESULTS}/classification/{run}/{source}.json"
                  for run in variant_runs("{variant}/seed{seed}", PRETRAINED) for source in CLASSIFY_SOURCES]


rule classify:
    input:
        data=lambda wildcards: world_outputs() if CLASSIFY_SOURCES[wildcards.source] is None else [],
        model=f"{RUNS}/{{variant}}/seed{{seed}}/model.pt",
    output:
        result=f"{RESULTS}/classification/{{variant}}/seed{{seed}}/{{source}}.json",
    params:
        config_args=CONFIG_ARGS,
        source=lambda wildcards: (f"--folder {CLASSIFY_SOURCES[wildcards.source]}"
                                  if CLASSIFY_SOURCES[wildcards.source] else "--split eval"),
        max_images=EXP.eval.max_images,
        # the variant's classification settings: a segmentation-only setting does not rerun the job
        protocol=lambda wildcards: digest(classification_settings(EXP.for_variant(wildcards.variant))),
        code=CODE["classify"],
    wildcard_constraints:
        source="|".join(CLASSIFY_SOURCES) or "no_classification_sources",
    log:
        f"{LOGS}/classify/{{variant}}_seed{{seed}}_{{source}}.log",
    threads: JOB_THREADS
    resources:
        gpu=1,
    conda:
        "../envs/groupvit.yaml"
    shell:
        "OMP_NUM_THREADS={threads} groupvit classify {params.config_args} --variant {wildcards.variant}"
        " --checkpoint {input.model} {params.source} --max-images {params.max_images}"
        " --out {output.result} > {log} 2>&1"


rule classification_table:
    input:
        CLASSIFY_FILES,
    output:
        table=report(f"{RESULTS}/tables/zero_shot_classification.md", caption="../report/classification.rst",
                     category="Tables"),
        csv=f"{RESULTS}/tables/zero_shot_classification.csv",
    params:
        config_args=CONFIG_ARGS,
        out=lambda wildcards, output: Path(output.table).parents[1],
        code=CODE["classification_table"],
    log:
        f"{LOGS}/classification_table.log",
    conda:
        "../envs/groupvit.yaml"
    shell:
        "groupvit classification-table {params.config_args} --out {params.out} > {log} 2>&1"
