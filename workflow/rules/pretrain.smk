# Pretraining: one job per (variant, seed). Resumable: a killed job restarts from its last checkpoint; a job rerun
# because its recipe changed (params) trains from scratch instead of continuing the old run (--on-recipe-change). The run
# folder also holds checkpoints/ and metrics.jsonl, deliberately not declared as outputs: Snakemake deletes declared
# outputs of an incomplete job, and both must survive a kill for the resumed run to continue its curve.


rule pretrain:
    input:
        train_data_inputs,
    output:
        model=f"{RUNS}/{{variant}}/seed{{seed}}/model.pt",
        summary=f"{RUNS}/{{variant}}/seed{{seed}}/summary.json",
    params:
        config_args=CONFIG_ARGS,
        run_dir=lambda wildcards, output: Path(output.model).parent,
        # what the run learns from (world, data, model, train; not eval, study or logging settings): a change retrains
        recipe=lambda wildcards: digest(training_recipe(EXP.for_variant(wildcards.variant))),
        code=CODE["train"],
        # torchrun (DDP) with train.processes processes, or one per GPU of the job when a profile gives it several;
        # a plain process otherwise
        launcher=lambda wildcards, resources: (
            f"torchrun --standalone --nproc_per_node {train_processes(wildcards, resources)} --no-python "
            if train_processes(wildcards, resources) > 1 else ""
        ),
    wildcard_constraints:
        variant="|".join(PRETRAINED) or "no_pretrained_variants",  # supervised references: supervised.smk
    log:
        f"{LOGS}/pretrain/{{variant}}_seed{{seed}}.log",
    threads: pretrain_threads
    # Trainings before evaluations: a freed core starts the next training, and the ~10-20 s evaluations fill the end,
    # instead of queueing in front of the last training (measured: one core idle ~60 s at the end of the study).
    priority: 10
    resources:
        gpu=1,
        # torch threads per process: the job's threads, shared by the CPU processes train.processes asks for (a
        # resource, not a param, so that another --cores retrains nothing)
        omp_threads=lambda wildcards, threads: max(1, threads // (EXP.for_variant(wildcards.variant).train.processes
                                                                  or 1)),
    conda:
        "../envs/groupvit.yaml"
    shell:
        "OMP_NUM_THREADS={resources.omp_threads} {params.launcher}groupvit train {params.config_args}"
        " --variant {wildcards.variant} --seed {wildcards.seed}"
        " --out {params.run_dir} --on-recipe-change restart > {log} 2>&1"
