# Data: the synthetic image-caption-mask world (train shards + masked val/eval splits in the VOC layout).


rule synthesize_world:
    output:
        train=directory(f"{DATA}/synthetic/train"),
        val=directory(f"{DATA}/synthetic/val"),
        eval=directory(f"{DATA}/synthetic/eval"),
        card=f"{DATA}/synthetic/datacard.json",
    params:
        config_args=CONFIG_ARGS,
        world=digest(EXP.world),
        code=CODE["synth"],
        out=lambda wildcards, output: Path(output.card).parent,
    log:
        f"{LOGS}/synthesize_world.log",
    threads: workflow.cores
    conda:
        "../envs/groupvit.yaml"
    shell:
        "groupvit synth {params.config_args} --out {params.out} --workers {threads} --no-progress > {log} 2>&1"
