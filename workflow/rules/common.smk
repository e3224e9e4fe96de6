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
TARGET_SPLITS = [config["datasets"]["target"]["train_split"], config["datasets"]["target"]["val_split"]]


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


def final_outputs():
    caches = ["source"] + [f"target_{split}" for split in TARGET_SPLITS]
    return [f"{RESULTS}/data/cache/{name}.h5" for name in caches] + [
        f"{RESULTS}/data/mixing_stats.md"
    ]
