# Zero-shot segmentation: one job per (scored model, seed, dataset). ViT variants are scored once per
# non-parametric grouper (pixel-wise, K-means, mean-shift, spectral) from the same checkpoint.


rule evaluate:
    input:
        data=eval_data_inputs,
        model=model_checkpoint,
    output:
        metrics=f"{RESULTS}/metrics/{{model}}/seed{{seed}}/{{dataset}}.json",
        per_class=f"{RESULTS}/metrics/{{model}}/seed{{seed}}/{{dataset}}_per_class.csv",
    params:
        config_args=CONFIG_ARGS,
        variant=lambda wildcards: MODELS[wildcards.model][0],
        grouper=lambda wildcards: MODELS[wildcards.model][1],
        protocol=lambda wildcards: digest(EXP.for_variant(MODELS[wildcards.model][0]).eval),  # the variant's own
        code=CODE["evaluate"],
    log:
        f"{LOGS}/evaluate/{{model}}_seed{{seed}}_{{dataset}}.log",
    threads: JOB_THREADS
    resources:
        gpu=1,
    conda:
        "../envs/groupvit.yaml"
    shell:
        "OMP_NUM_THREADS={threads} groupvit evaluate {params.config_args} --variant {params.variant}"
        " --grouper {params.grouper}"
        " --checkpoint {input.model} --dataset {wildcards.dataset} --out {output.metrics} > {log} 2>&1"
