# Tables: every metrics file and run summary of the study -> the paper's tables with the published numbers beside,
# the reproduction checks, DVC metrics and the training curves.

from groupvit.report.tables import ABLATION_TABLES  # noqa: E402

TABLE_FILES = [f"{table}.{ext}" for table in (*ABLATION_TABLES, "per_class_iou") for ext in ("md", "csv")]
TABLE_FILES += ["zero_shot.csv", "grouping_vs_baselines.csv", "checks.json", "variants.csv", "runs.csv"]


rule tables:
    input:
        metrics=metrics_files(),
        summaries=run_summaries(),
    output:
        zero_shot=report(f"{RESULTS}/tables/zero_shot.md", caption="../report/tables.rst", category="Tables"),
        baselines=report(
            f"{RESULTS}/tables/grouping_vs_baselines.md", caption="../report/tables.rst", category="Tables"
        ),
        checks=report(f"{RESULTS}/tables/checks.md", caption="../report/checks.rst", category="Tables"),
        dvc_metrics=f"{RESULTS}/metrics.json",
        metrics_long=f"{RESULTS}/metrics_long.csv",
        curves=f"{RESULTS}/training_curves.csv",
        # every other file `groupvit tables` writes, declared so that none can linger from an earlier run
        other=[f"{RESULTS}/tables/{name}" for name in TABLE_FILES],
    params:
        config_args=CONFIG_ARGS,
        out=lambda wildcards, output: Path(output.dvc_metrics).parent,
        code=CODE["tables"],
    log:
        f"{LOGS}/tables.log",
    conda:
        "../envs/groupvit.yaml"
    shell:
        "groupvit tables {params.config_args} --out {params.out} > {log} 2>&1"
