# Real evaluation datasets (Pascal VOC 2012 val, Pascal Context val, COCO-Object val2017): download (resumable,
# checksum-verified), safe extraction and conversion into the readers' layouts; groupvit.evaluation.download.sets.
# One job per dataset, in the DAG only when a preset's eval.datasets lists a real dataset whose data are not in place
# (eval_data_inputs in common.smk asks real_eval_data_inputs below; a finished download's marker stays an
# input, so that a second run finds the evaluations' inputs unchanged and has nothing to do). Runs on the
# submitting host under a cluster profile (localrules): compute nodes often have no internet.
from functools import partial  # noqa: E402

from groupvit.evaluation.download.sets import FOLDER_TO_DATASET, ready_marker_inputs  # noqa: E402

EVAL_ROOT = str(Path(EXP.eval_data.root))
# real_eval_data_inputs(dataset): [its marker] (made by the download, or there from an earlier one), or [] when the
# dataset was put in the reader's layout by hand
real_eval_data_inputs = partial(ready_marker_inputs, EVAL_ROOT)


localrules:
    download_eval_dataset,


rule download_eval_dataset:
    output:
        ready=f"{EVAL_ROOT}/{{evalfolder}}/.groupvit-ready.json",
    wildcard_constraints:
        evalfolder="|".join(FOLDER_TO_DATASET),
    params:
        config_args=CONFIG_ARGS,
        dataset=lambda wildcards: FOLDER_TO_DATASET[wildcards.evalfolder],
        root=lambda wildcards, output: Path(output.ready).parent.parent,
    log:
        f"{LOGS}/download_eval/{{evalfolder}}.log",
    conda:
        "../envs/groupvit.yaml"
    shell:
        "groupvit download-eval {params.config_args} --dataset {params.dataset} --root {params.root} > {log} 2>&1"
