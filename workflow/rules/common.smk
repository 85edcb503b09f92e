# Helpers shared by the rules: config validation, preset resolution and the target lists.
import sys
from pathlib import Path

# The workflow drives the project's own package; make it importable from a plain checkout too.
sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from groupvit.code_digest import code_digest, notebook_entries  # noqa: E402
from groupvit.config import ConfigError, resolve_preset, to_dict, validate_raw  # noqa: E402
from groupvit.evaluation.readout import OFFICIAL_GROUPER, official_readout_model  # noqa: E402
from groupvit.report.reference_row import supervised_variants  # noqa: E402
from groupvit.train.recipe import training_recipe  # noqa: E402

# Validation against schemas/config.schema.yaml (the CLI uses the same file and messages): a bad key, type, value,
# preset or variant name stops the DAG build with the key path and the allowed values.
try:
    validate_raw(config, source="config/config.yaml (with --config overrides)")
    PRESET = config["preset"]
    EXP = resolve_preset(config, PRESET)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

DATA = f"data/{PRESET}"
RUNS = f"runs/{PRESET}"
RESULTS = f"results/{PRESET}"
LOGS = f"logs/{PRESET}"
CONFIG_ARGS = f"--config config/config.yaml --preset {PRESET}"
# Threads of one training or evaluation job: half the cores, so two jobs share the machine. On 2 CPU cores two
# 1-thread training jobs train 1.23x the samples/s of one 2-thread job (300 vs 244 samples/s, measured side by side
# by benchmarks/parallel_jobs.py); on a GPU node the GPU, not these threads, limits a job. Passed on as
# OMP_NUM_THREADS, which torch reads at start-up.
JOB_THREADS = max(1, workflow.cores // 2)


def pretrain_threads(wildcards):
    """JOB_THREADS, except that with an odd number of trainings the last one in study order gets all the cores: it
    would otherwise run alone on half of them at the end (4.5 of the default study's 25.7 min with one core idle).
    A fixed rule, not a scheduling-time choice, so every job's thread count (and so its numbers) is reproducible."""
    runs = variant_runs("{variant}/{seed}")
    if len(runs) % 2 == 1 and f"{wildcards.variant}/{wildcards.seed}" == runs[-1]:
        return max(JOB_THREADS, workflow.cores)
    return JOB_THREADS


# The code each kind of job runs, as a param: a change to that code reruns exactly those jobs (and their descendants).
# Comments, docstrings and formatting are not part of the digest (groupvit.code_digest), so editing them reruns nothing.
CODE = {
    "synth": code_digest(["groupvit.cli:cmd_synth"]),
    "train": code_digest(["groupvit.cli:cmd_train"]),
    "train_supervised": code_digest(["groupvit.cli_tools:cmd_train_supervised"]),
    "evaluate": code_digest(["groupvit.cli:cmd_evaluate"]),
    "tables": code_digest(["groupvit.cli:cmd_tables"]),
    "classify": code_digest(["groupvit.cli_tools:cmd_classify"]),
    "classification_table": code_digest(["groupvit.cli_tools:cmd_classification_table"]),
    "report": code_digest(notebook_entries(Path(workflow.basedir).parent / "notebooks" / "report.ipynb")),
}


def digest(section):
    """A short hash of a config section: as a rule param it makes Snakemake rerun the rule when the section changes."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(to_dict(section), sort_keys=True).encode()).hexdigest()[:16]


def world_outputs():
    """The synthetic world's files (the data card marks a complete world)."""
    return [f"{DATA}/synthetic/datacard.json"]


def scored_models():
    """{model name: (variant, grouper)} for every scored model: a GroupViT variant is scored with its own groups,
    a ViT variant once per non-parametric grouper (named VARIANT_GROUPER), and the main variant a second time with
    the paper's official readout when the preset reads it out otherwise (MAIN_official_readout, same checkpoints)."""
    models = {}
    for name in EXP.study.variants:
        spec = EXP.variants[name]
        if spec.family == "groupvit":
            models[name] = (name, "groupvit")
        elif spec.family == "supervised":  # the reference row: scored once, by its own per-pixel classifier
            models[name] = (name, "supervised")
        else:
            models.update({f"{name}_{grouper}": (name, grouper) for grouper in spec.groupers})
    official = official_readout_model(EXP)
    if official:
        models[official] = (EXP.study.main_variant, OFFICIAL_GROUPER)
    return models


MODELS = scored_models()


def variant_runs(pattern, variants=None):
    """`pattern` formatted for every (variant, seed) the study trains (a variant may have its own seeds)."""
    return [
        pattern.format(variant=name, seed=seed)
        for name in (EXP.study.variants if variants is None else variants)
        for seed in EXP.seeds_of(name)
    ]


# `groupvit train` pretrains the study's GroupViT and ViT variants; `groupvit train-supervised` the supervised
# references (family: supervised), which are scored but not classified.
SUPERVISED = supervised_variants(EXP)
PRETRAINED = [name for name in EXP.study.variants if name not in SUPERVISED]


wildcard_constraints:
    variant="|".join(EXP.study.variants),
    model="|".join(MODELS),
    seed=r"\d+",
    dataset="|".join(EXP.eval.datasets),


def train_data_inputs(wildcards):
    """What a training job reads: the synthetic world, or nothing Snakemake makes (real shards are downloaded)."""
    return world_outputs() if EXP.data.source == "synthetic" else []


def eval_data_inputs(wildcards):
    return world_outputs() if wildcards.dataset == "synthetic" else real_eval_data_inputs(wildcards.dataset)


def train_processes(wildcards, resources):
    """Processes of one training job: train.processes, or one per GPU the job gets (resources.gpu)."""
    return EXP.for_variant(wildcards.variant).train.processes or resources.gpu


def model_checkpoint(wildcards):
    variant, _ = MODELS[wildcards.model]
    return f"{RUNS}/{variant}/seed{wildcards.seed}/model.pt"


def metrics_files():
    return [
        f"{RESULTS}/metrics/{model}/seed{seed}/{dataset}.json"
        for model, (variant, _) in MODELS.items()
        for seed in EXP.seeds_of(variant)
        for dataset in EXP.eval.datasets
    ]


def run_summaries():
    return variant_runs(f"{RUNS}/{{variant}}/seed{{seed}}/summary.json")


def trained_models():
    return variant_runs(f"{RUNS}/{{variant}}/seed{{seed}}/model.pt")


def all_targets():
    """The report and tables, plus every trained model: a deleted model is a missing target, so Snakemake retrains
    it and reruns exactly its descendants (a missing intermediate file alone would not trigger anything)."""
    targets = trained_models()
    if EXP.data.source == "synthetic":
        targets += world_outputs()
    targets += [f"{RESULTS}/tables/zero_shot.md", f"{RESULTS}/reports/report.html"]
    return targets
