# Report: the parameterised notebook executed by papermill, rendered to code-free HTML.


# Every figure the notebook writes, declared so that a figure no cell writes any more cannot linger among the outputs;
# the qualitative grids and the group concepts exist only for the synthetic world, whose images the notebook reads.
REPORT_FIGURES = ["miou_bars", "per_class_iou", "training_curves"]
REPORT_FIGURES += ["qualitative_soft", "qualitative_hard"] if EXP.eval.datasets[0] == "synthetic" else []
REPORT_FIGURES += ["group_concepts"] if EXP.eval.datasets[0] == "synthetic" else []
# every further scored dataset (a real-data preset scores three) gets its own mIoU bars and per-class heatmap
REPORT_FIGURES += [f"{figure}_{dataset}" for dataset in EXP.eval.datasets[1:]
                   for figure in ("miou_bars", "per_class_iou")]


rule report:
    input:
        notebook="notebooks/report.ipynb",
        tables=rules.tables.output,
        # the classification table, when the preset has something to classify (classify.smk)
        classification=rules.classification_table.output if CLASSIFY_SOURCES else [],
        model=f"{RUNS}/{EXP.study.main_variant}/seed{EXP.seeds_of(EXP.study.main_variant)[0]}/model.pt",
        data=train_data_inputs,
    output:
        notebook=f"{RESULTS}/reports/report.ipynb",
        html=report(f"{RESULTS}/reports/report.html", caption="../report/report.rst", category="Report"),
        figures=[report(f"{RESULTS}/figures/{name}.png", category="Figures") for name in REPORT_FIGURES],
    params:
        preset=PRESET,
        results=lambda wildcards, output: Path(output.notebook).parents[1],
        runs=lambda wildcards, input: Path(input.model).parents[2],
        data=lambda wildcards, input: Path(input.data[0]).parents[1] if input.data else f"data/{PRESET}",
        html_dir=lambda wildcards, output: Path(output.html).parent,
        code=CODE["report"],
    log:
        f"{LOGS}/report.log",
    conda:
        "../envs/groupvit.yaml"
    shell:
        "(papermill {input.notebook} {output.notebook} -k python3 --cwd . --log-output"
        " -p preset {params.preset} -p results_dir {params.results} -p runs_dir {params.runs}"
        " -p data_dir {params.data}"
        " && jupyter nbconvert --to html --no-input {output.notebook} --output-dir {params.html_dir}) > {log} 2>&1"
