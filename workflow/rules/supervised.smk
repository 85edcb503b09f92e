# The "supervised, same budget" reference: one job per (supervised variant, seed), the ViT baseline's encoder + a
# per-token classifier trained on the world's masks for the study's budget (groupvit train-supervised). Resumable like
# pretrain: checkpoints/ and metrics.jsonl are not declared outputs. The `evaluate` rule scores it (grouper
# supervised); it is not classified.


rule pretrain_supervised:
    input:
        world_outputs(),  # the masks are rendered from the world's config; its train shards are checked against them
    output:
        model=f"{RUNS}/{{variant}}/seed{{seed}}/model.pt",
        summary=f"{RUNS}/{{variant}}/seed{{seed}}/summary.json",
    params:
        config_args=CONFIG_ARGS,
        run_dir=lambda wildcards, output: Path(output.model).parent,
        recipe=lambda wildcards: digest(training_recipe(EXP.for_variant(wildcards.variant))),
        code=CODE["train_supervised"],
    wildcard_constraints:
        variant="|".join(SUPERVISED) or "no_supervised_variants",
    log:
        f"{LOGS}/pretrain/{{variant}}_seed{{seed}}.log",
    threads: pretrain_threads
    priority: 10
    resources:
        gpu=1,
    conda:
        "../envs/groupvit.yaml"
    shell:
        "OMP_NUM_THREADS={threads} groupvit train-supervised {params.config_args} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --out {params.run_dir} --on-recipe-change restart > {log} 2>&1"
