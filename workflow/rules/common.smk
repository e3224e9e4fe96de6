# Helpers shared by the workflow: config validation, paths, and each stage's config slice.

import json
import os

from snakemake.exceptions import WorkflowError

from selfpanoptic.config import guidance_mode, validate_config
from selfpanoptic.provenance import stage_code_hash
from selfpanoptic.errors import InputError
from selfpanoptic.toy.domains import check_toy_roots


try:
    _validated = validate_config(config, "config (config.yaml and --config overrides)")
    check_toy_roots(_validated)
except InputError as err:
    raise WorkflowError(str(err))
config.clear()
config.update(_validated)

RESULTS = config["results"]
ENV = "../../envs/selfpanoptic.yaml"
TOY = config["toy"]["enabled"]

DATASET_FORMATS = {"synthia": "synthia", "gta": "gta5", "target": "cityscapes"}
TRAIN_SPLIT = config["datasets"]["target"]["train_split"]
VAL_SPLIT = config["datasets"]["target"]["val_split"]
TARGET_SPLITS = [TRAIN_SPLIT, VAL_SPLIT]
ROUNDS = list(range(1, config["selftrain"]["rounds"] + 1))
RUNS = ["round0"] + [f"round{r}" for r in ROUNDS] + (["oracle"] if config["oracle"] else [])
PRETRAIN_RUNS = "round0|oracle"
GROUPS = list(config["instance"]["groups"])


wildcard_constraints:
    r=r"[1-9]\d*",
    group="|".join(GROUPS),

_GT_FINE = f'{config["datasets"]["target"]["root"]}/gtFine'
PANOPTIC_GT_JSON = f"{_GT_FINE}/cityscapes_panoptic_{VAL_SPLIT}.json"
PANOPTIC_GT_FOLDER = f"{_GT_FINE}/cityscapes_panoptic_{VAL_SPLIT}"


def job_resources(kind):
    """Scheduler resources of a kind of job (train, predict, data) from the config's `resources`."""
    spec = config["resources"][kind]
    return {"gpu": spec["gpu"], "mem_mb": spec["mem_mb"], "runtime": spec["runtime"]}


def job_threads(kind):
    return config["resources"][kind]["threads"]


STAGE_MODULES = {
    "synthesize": ["toy", "pngio.py", "atomic.py"],
    "index": ["data", "pngio.py", "classes.py", "segments.py"],
    "mix": ["mixing.py", "data/manifest.py"],
    "cache": ["data", "pngio.py", "h5io.py"],
    "pretrain": ["train/engine.py", "train/data.py", "train/semantic.py", "train/instance.py", "models", "losses",
                 "segments.py", "classes.py"],
    "predict": ["predict.py", "models", "pseudo", "train/data.py"],
    "evaluate": ["evaluate.py", "metrics", "classes.py"],
    "fuse": ["fusion.py", "panoptic_outputs.py", "segments.py"],
    "report": ["report.py", "audit.py", "pseudo/grading.py"],
    "selftrain": ["train", "models", "losses", "pseudo", "pseudo_labels.py", "segments.py", "classes.py", "config.py"],
}
"""Package modules whose code defines each stage: a change to them reruns the stage."""


def code_version(stage):
    """Hash of the source of a stage's modules, for `params`.

    Snakemake notices changes to a rule's own shell command, not to the Python package it
    calls; this param makes an edit of the stage's code rerun the stage and its descendants.
    """
    return stage_code_hash(STAGE_MODULES[stage])


def stage_settings(section):
    """A stage's own config section as canonical JSON, for `params`.

    A changed param makes Snakemake rerun the job, so each stage gets only its own section;
    changing one stage's settings reruns that stage and what follows it, nothing upstream.
    """
    return json.dumps(config[section], sort_keys=True, separators=(",", ":"))


def selftrain_settings(*parts):
    """The named parts of the `selftrain` section as canonical JSON, for `params`.

    Never `rounds`: adding a round must not rerun the earlier ones. Semantic and instance
    self-training get their own parts, so changing one reruns only it and what follows.
    """
    section = {part: config["selftrain"][part] for part in parts}
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def previous_round_model(relative):
    """Input function: a model file of round r-1 (round0 for r = 1), e.g. "semantic/model.pt"."""

    def path(wildcards):
        return f"{RESULTS}/round{int(wildcards.r) - 1}/{relative.format(**wildcards)}"

    return path


def previous_round_instance_models(wildcards):
    return [f"{RESULTS}/round{int(wildcards.r) - 1}/instance/{group}/model.pt" for group in GROUPS]


def guidance_input(wildcards):
    """Round r-1's instance prediction on the target train images, when it guides round r."""
    if guidance_mode(config["selftrain"]["guidance"], int(wildcards.r)) != "predicted":
        return []
    return f"{RESULTS}/round{int(wildcards.r) - 1}/instance/pred_target_{TRAIN_SPLIT}.h5"


def dataset_root(wildcards):
    return config["datasets"][wildcards.dataset]["root"]


def split_option(wildcards):
    return "" if wildcards.split == "all" else f"--split {wildcards.split}"


def cache_manifest(wildcards):
    """The manifest a cache is built from: the mixed source, or a target split's index."""
    if wildcards.name == "source":
        return f"{RESULTS}/data/mixed_source.csv"
    split = wildcards.name.removeprefix("target_")
    return f"{RESULTS}/data/index/target_{split}.csv"


def training_cache(wildcards):
    """Round 0 trains on the mixed source, the oracle on the target train split's labels."""
    name = "source" if wildcards.run == "round0" else f"target_{TRAIN_SPLIT}"
    return f"{RESULTS}/data/cache/{name}.h5"


def instance_models(wildcards):
    return [f"{RESULTS}/{wildcards.run}/instance/{group}/model.pt" for group in GROUPS]


def round_label(wildcards):
    """The round column of the metrics table: 0, 1, ... or oracle."""
    return wildcards.run.removeprefix("round")


def metric_tables():
    return [f"{RESULTS}/{run}/eval/{task}.csv" for run in RUNS for task in ("semantic", "instance", "panoptic")]


def report_runs(wildcards):
    """--run options of the report: label, semantic prediction and panoptic folder of each run."""
    return " ".join(
        f"--run {run} {RESULTS}/{run}/semantic/pred_target_{VAL_SPLIT}.h5 {RESULTS}/{run}/panoptic"
        for run in RUNS
    )


def final_outputs():
    caches = ["source"] + [f"target_{split}" for split in TARGET_SPLITS]
    return (
        [f"{RESULTS}/data/cache/{name}.h5" for name in caches]
        + [f"{RESULTS}/data/mixing_stats.md", f"{RESULTS}/summary/report.md"]
        + [f"{RESULTS}/{run}/semantic/pred_target_{split}.h5" for run in RUNS for split in TARGET_SPLITS]
        + [f"{RESULTS}/round{r}/pseudo/audit.txt" for r in ROUNDS]
    )
