# Helpers shared by the workflow: config validation, paths, and each stage's config slice.

import json

from snakemake.exceptions import WorkflowError

from selfpanoptic.config import validate_config
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
RUNS = ["round0"] + (["oracle"] if config["oracle"] else [])
PRETRAIN_RUNS = "round0|oracle"
GROUPS = list(config["instance"]["groups"])


def stage_settings(section):
    """A stage's own config section as canonical JSON, for `params`.

    A changed param makes Snakemake rerun the job, so each stage gets only its own section;
    changing one stage's settings reruns that stage and what follows it, nothing upstream.
    """
    return json.dumps(config[section], sort_keys=True, separators=(",", ":"))


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
    return [f"{RESULTS}/{run}/eval/{task}.csv" for run in RUNS for task in ("semantic", "instance")]


def final_outputs():
    caches = ["source"] + [f"target_{split}" for split in TARGET_SPLITS]
    return (
        [f"{RESULTS}/data/cache/{name}.h5" for name in caches]
        + [f"{RESULTS}/data/mixing_stats.md", f"{RESULTS}/summary/metrics.csv"]
        + [f"{RESULTS}/{run}/semantic/pred_target_{split}.h5" for run in RUNS for split in TARGET_SPLITS]
    )
