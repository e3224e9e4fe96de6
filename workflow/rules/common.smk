# Helpers shared by the workflow: config validation, paths, and each stage's config slice.

import json
import os
import re
import shlex
import sys

from snakemake.exceptions import WorkflowError

from snakemake.common.configfile import load_configfile

from selfpanoptic.config import (
    compose_configs,
    experiment_selftrain,
    guidance_mode,
    has_instances,
    protocol_config,
    seeded,
    source_datasets,
    validate_config,
)
from selfpanoptic.provenance import stage_code_hash
from selfpanoptic.data.labelled import target_split_labelled
from selfpanoptic.data.required import check_required_dataset_files
from selfpanoptic.errors import InputError
from selfpanoptic.gpus import JOBS_PER_GPU_VARIABLE
from selfpanoptic.toy.domains import check_toy_roots


# Snakemake merged config.yaml, each --configfile and --config key by key; maps whose keys the
# user chooses (instance.groups) must come whole from the last layer that sets them.
_layers = [load_configfile(str(f)) for f in workflow.config_settings.configfiles]
_layers.append(dict(workflow.config_settings.config))

try:
    _validated = validate_config(compose_configs(config, _layers), "config (config.yaml, --configfile and --config)")
    check_toy_roots(_validated)
    check_required_dataset_files(_validated)
except InputError as err:
    raise WorkflowError(str(err))
# The source protocol (mixing.sources) may switch guidance off; say so once, on loading.
_validated, _protocol_note = protocol_config(_validated)
if _protocol_note:
    print(_protocol_note, file=sys.stderr)
config.clear()
config.update(_validated)

# Jobs read how many of them may share a GPU from the environment Snakemake runs them in: in
# params it would rerun them when it changes, and resources never trigger reruns.
os.environ[JOBS_PER_GPU_VARIABLE] = str(config["resources"]["jobs_per_gpu"])

RESULTS = config["results"]
ENV = "../../envs/selfpanoptic.yaml"
TOY = config["toy"]["enabled"]
SOURCES = source_datasets(config)
# Instance models, guidance, panoptic fusion and PQ exist only when a source has instance labels.
INSTANCES = has_instances(config)

TARGET = config["datasets"]["target"]
DATASET_FORMATS = {"synthia": "synthia", "gta": "gta5", "target": TARGET["format"]}
TRAIN_SPLIT = TARGET["train_split"]
VAL_SPLIT = TARGET["val_split"]
TARGET_SPLITS = [TRAIN_SPLIT, VAL_SPLIT]
# Decided once, when the job graph is built: what needs target labels is left out without them.
TRAIN_LABELLED = target_split_labelled(TARGET, "train", TOY)
VAL_LABELLED = target_split_labelled(TARGET, "val", TOY)
ROUNDS = list(range(1, config["selftrain"]["rounds"] + 1))
ORACLE = config["oracle"] and TRAIN_LABELLED
# mixing.translated > 0: a label-to-image translator renders the source in the target's look, and
# the run `translated` is round 0's models trained on that mix (workflow/rules/translate.smk).
TRANSLATED = config["mixing"]["translated"] > 0
TRANSLATION = config["translation"]
if TRANSLATED and TRANSLATION["labels_from"] == "ground_truth" and not TRAIN_LABELLED:
    raise WorkflowError("translation.labels_from is ground_truth, but the target train split has no labels; "
                        "set translation.labels_from to a round (round0, round1, ...)")
RUNS = (["round0"] + [f"round{r}" for r in ROUNDS] + (["translated"] if TRANSLATED else [])
        + (["oracle"] if ORACLE else []))
if config["oracle"] and not TRAIN_LABELLED:
    print("selfpanoptic: the target train split has no labels: no oracle run, and the pseudo-label audits "
          "describe the pseudo-labels without grading them", file=sys.stderr)
if not VAL_LABELLED:
    print("selfpanoptic: the target val split has no labels: models predict on it, but evaluation, metrics "
          "and the report are skipped (labels: datasets.target.val_labels or gtFine/<val_split>)", file=sys.stderr)
GROUPS = list(config["instance"]["groups"])

# Repeats and variants (seeds, experiments): each (seed, variant) pair is a tree of runs. The first
# seed's main rounds are results/round{r}; seed s > first lives under results/seed{s}/, variant E
# under results/experiments/E/ (or results/seed{s}/experiments/E/). Variants share their seed's
# round 0 (and translated run) and oracle; the data, caches and the translator are shared by all.
SEEDS = config["seeds"]
EXPERIMENTS = list(config["experiments"])
TREE_PATTERN = r"(seed[0-9]+/)?(experiments/[A-Za-z][A-Za-z0-9_]*/)?"
PRETRAIN_RUNS = r"(seed[0-9]+/)?(round0|oracle|translated)"


wildcard_constraints:
    r=r"[1-9]\d*",
    group="|".join(GROUPS),
    tree=TREE_PATTERN,


def tree_path(seed, experiment=None):
    """The folder prefix ("" for the first seed's main rounds) of a seed and variant (None: main)."""
    return ("" if seed == SEEDS[0] else f"seed{seed}/") + ("" if experiment is None else f"experiments/{experiment}/")


def parse_tree(tree):
    """(seed, variant or None) of a tree prefix such as "seed1/experiments/no_guidance/"."""
    match = re.fullmatch(r"(?:seed([0-9]+)/)?(?:experiments/([A-Za-z][A-Za-z0-9_]*)/)?", tree)
    return (int(match[1]) if match[1] else SEEDS[0]), match[2]


def run_name(run):
    """The run of a run path without its tree ("seed1/oracle" -> "oracle")."""
    return run.rpartition("/")[2]


def run_tree(run):
    """The tree prefix of a run path ("seed1/round0" -> "seed1/", "round2" -> "")."""
    head, _, _ = run.rpartition("/")
    return f"{head}/" if head else ""


def tree_selftrain(wildcards):
    """The ``selftrain`` section a tree's rounds run with: its variant's, with its seed."""
    seed, experiment = parse_tree(wildcards.tree)
    return seeded(experiment_selftrain(config, experiment), seed)

# A Cityscapes target ships its panoptic ground truth; the panoptic_ground_truth rule makes an
# image folder's from its val labels.
if TARGET["format"] == "images":
    _GT_FINE = f"{RESULTS}/data/panoptic_gt"
    PANOPTIC_GT_INPUT = [f"{_GT_FINE}/cityscapes_panoptic_{VAL_SPLIT}.json", f"{_GT_FINE}/cityscapes_panoptic_{VAL_SPLIT}"]
else:
    _GT_FINE = f'{TARGET["root"]}/gtFine'
    PANOPTIC_GT_INPUT = TARGET["root"]
PANOPTIC_GT_JSON = f"{_GT_FINE}/cityscapes_panoptic_{VAL_SPLIT}.json"
PANOPTIC_GT_FOLDER = f"{_GT_FINE}/cityscapes_panoptic_{VAL_SPLIT}"


def job_resources(kind):
    """Scheduler resources of a kind of job (train, predict, data) from the config's `resources`."""
    spec = config["resources"][kind]
    # data_workers (train jobs): read by the shell command, never a rerun trigger
    return {key: value for key, value in spec.items() if key != "threads"}


def job_threads(kind):
    return config["resources"][kind]["threads"]


def settings_option(section, parts=None, value=None):
    """``--<section>-settings '<json>'``: a config section (or the named ``parts`` of it) for a command.

    A changed param makes Snakemake rerun the job, so each stage gets only its own sections, or
    parts of them; changing one stage's settings reruns that stage and what follows, nothing
    upstream. ``selftrain`` is always passed by parts: never ``rounds``, so adding a round does
    not rerun the earlier ones.
    """
    value = config[section] if value is None else value
    value = value if parts is None else {part: value[part] for part in parts}
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return f"--{section}-settings {shlex.quote(text)}"


def stage_params(command, *settings):
    """The params of every stage: ``code`` and ``settings`` (the command's settings options).

    ``code`` hashes the import closure of the command's stage module, so editing any package
    module the stage uses reruns it and its descendants (Snakemake itself only notices edits of
    the shell command). A settings option may be a function of the wildcards (a tree's seed and
    variant: :func:`seeded_settings`, :func:`selftrain_settings`).
    """
    if not any(callable(option) for option in settings):
        return {"code": stage_code_hash(command), "settings": " ".join(settings)}

    def joined(wildcards):
        return " ".join(option(wildcards) if callable(option) else option for option in settings)

    return {"code": stage_code_hash(command), "settings": joined}


def seeded_settings(section):
    """``--<section>-settings`` of a pretraining run, with the seed of the run's tree."""

    def option(wildcards):
        seed, _ = parse_tree(run_tree(wildcards.run))
        return settings_option(section, value=seeded(config[section], seed))

    return option


def selftrain_settings(parts):
    """``--selftrain-settings`` (the named parts) of a self-training tree: its variant, its seed."""

    def option(wildcards):
        return settings_option("selftrain", parts, value=tree_selftrain(wildcards))

    return option


def previous_run(wildcards):
    """The run round r of a tree starts from: the tree's round r-1; for r = 1 its seed's round 0,
    or its seed's run `translated` when translation.selftrain_from says so."""
    r = int(wildcards.r)
    if r > 1:
        return f"{wildcards.tree}round{r - 1}"
    seed, _ = parse_tree(wildcards.tree)
    start = "translated" if TRANSLATED and TRANSLATION["selftrain_from"] == "translated" else "round0"
    return f"{tree_path(seed)}{start}"


def previous_round_model(relative):
    """Input function: a model file of the run round r starts from, e.g. "semantic/model.pt"."""

    def path(wildcards):
        return f"{RESULTS}/{previous_run(wildcards)}/{relative.format(**wildcards)}"

    return path


def previous_round_instance_models(wildcards):
    return [f"{RESULTS}/{previous_run(wildcards)}/instance/{group}/model.pt" for group in GROUPS]


def guidance_input(wildcards):
    """Round r-1's instance prediction on the target train images, when it guides round r."""
    if guidance_mode(tree_selftrain(wildcards)["guidance"], int(wildcards.r)) != "predicted":
        return []
    return f"{RESULTS}/{previous_run(wildcards)}/instance/pred_target_{TRAIN_SPLIT}.h5"


def guidance_option(wildcards, input):
    """``--guidance-instances FILE`` when round r-1's instances guide round r, else nothing."""
    return f"--guidance-instances {shlex.quote(input.guidance)}" if input.guidance else ""


def dataset_root(wildcards):
    return config["datasets"][wildcards.dataset]["root"]


def split_option(wildcards):
    return "" if wildcards.split == "all" else f"--split {wildcards.split}"


def full_resolution_manifest(wildcards):
    """The val split's index: its predictions are made at the ground truth's resolution."""
    return f"{RESULTS}/data/index/target_{VAL_SPLIT}.csv" if wildcards.split == VAL_SPLIT else []


def full_resolution_option(wildcards, input):
    """``--full-resolution MANIFEST`` for the val split's predictions, else nothing."""
    return f"--full-resolution {shlex.quote(input.full_resolution)}" if input.full_resolution else ""


def reader_options(wildcards):
    """``--glob`` (and ``--labels``) of an image-folder target's split, else nothing."""
    if DATASET_FORMATS[wildcards.dataset] != "images":
        return ""
    if wildcards.split not in TARGET_SPLITS:
        raise WorkflowError(f"the images target has the splits {TRAIN_SPLIT} and {VAL_SPLIT}, not {wildcards.split}")
    which = "train" if wildcards.split == TRAIN_SPLIT else "val"
    labels = TARGET["val_labels"] if which == "val" else None
    return f"--glob {shlex.quote(TARGET[f'{which}_glob'])}" + (f" --labels {shlex.quote(labels)}" if labels else "")


def cache_manifest(wildcards):
    """The manifest a cache is built from: the mixed source, or a target split's index."""
    if wildcards.name == "source":
        return f"{RESULTS}/data/mixed_source.csv"
    if wildcards.name == "translated_source":
        return f"{RESULTS}/data/translated_source.csv"
    split = wildcards.name.removeprefix("target_")
    return f"{RESULTS}/data/index/target_{split}.csv"


def training_cache(wildcards):
    """Round 0 (and its variant `translated`) trains on the mixed source, the oracle on the target train split's labels."""
    name = f"target_{TRAIN_SPLIT}" if run_name(wildcards.run) == "oracle" else "source"
    return f"{RESULTS}/data/cache/{name}.h5"


def translated_cache(wildcards):
    """The translated source cache, for the run `translated` only."""
    return f"{RESULTS}/data/cache/translated_source.h5" if run_name(wildcards.run) == "translated" else []


def translated_option(wildcards, input):
    """``--translated CACHE --translated-share P`` of the run `translated`, else nothing; the share
    is here, not in a settings option, so that changing it reruns that run alone."""
    if not input.translated:
        return ""
    return f"--translated {shlex.quote(input.translated)} --translated-share {config['mixing']['translated']}"


def co_learning_target(wildcards):
    """The target train cache whose images pretraining's co-learning also generates, when it does."""
    co_learning = config["semantic"]["co_learning"]
    if not co_learning["enabled"] or co_learning["target_batch_size"] == 0:
        return []
    return f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5"


def target_option(wildcards, input):
    """``--target CACHE`` when pretraining's co-learning generates target images, else nothing."""
    return f"--target {shlex.quote(input.target)}" if input.target else ""


def validation_cache(*section):
    """Input function of a training rule: the target val cache when the rule's ``train`` section
    (``config[section...]["train"]``; for ``selftrain``, that of the tree's variant) has
    ``validate_every`` > 0, else nothing."""
    in_selftrain = section[0] == "selftrain"
    keys = section[1:] if in_selftrain else section

    def validates(root):
        for key in keys:
            root = root[key]
        return root["train"]["validate_every"] > 0

    roots = [config["selftrain"]] + [experiment_selftrain(config, name) for name in EXPERIMENTS] if in_selftrain else [config]
    if any(validates(root) for root in roots) and not VAL_LABELLED:
        raise WorkflowError(f"{'.'.join(section)}.train.validate_every > 0 validates on the target val labels, "
                            "which this target lacks; set it to 0 (in experiments too), or give the val split labels")

    def path(wildcards):
        root = tree_selftrain(wildcards) if in_selftrain else config
        return f"{RESULTS}/data/cache/target_{VAL_SPLIT}.h5" if validates(root) else []

    return path


def val_option(wildcards, input):
    """``--val-data CACHE`` when a training rule validates on the target val cache, else nothing."""
    return f"--val-data {shlex.quote(input.val)}" if input.val else ""


def co_learning_figure(section, folder):
    """The ``figure`` output of a training rule whose stage has co-learning on (else none)."""
    enabled = config[section]["semantic"]["co_learning"] if section == "selftrain" else config[section]["co_learning"]
    return {"figure": f"{folder}/semantic/co_learning.png"} if enabled["enabled"] else {}


def co_learning_figures():
    """Run label -> co-learning figure, of every run trained with co-learning (for the report)."""
    runs = []
    if config["semantic"]["co_learning"]["enabled"]:
        runs += ["round0"] + (["oracle"] if ORACLE else [])
    if config["selftrain"]["semantic"]["co_learning"]["enabled"]:
        runs += [f"round{r}" for r in ROUNDS]
    return {run: f"{RESULTS}/{run}/semantic/co_learning.png" for run in runs}


def generated_options(wildcards):
    """``--generated LABEL PNG`` of the report, one per co-learning figure."""
    return " ".join(f"--generated {run} {shlex.quote(path)}" for run, path in co_learning_figures().items())


def instance_models(wildcards):
    return [f"{RESULTS}/{wildcards.run}/instance/{group}/model.pt" for group in GROUPS]


def round_label(wildcards):
    """The round column of the metrics table: 0, 1, ..., translated or oracle (of any tree)."""
    return run_name(wildcards.run).removeprefix("round")


def metric_tables():
    tasks = ("semantic", "instance", "panoptic") if INSTANCES else ("semantic",)
    return [f"{RESULTS}/{run}/eval/{task}.csv" for run in RUNS for task in tasks]


def report_runs(wildcards):
    """--run options of the report: label, semantic prediction and panoptic folder (if any) of each run."""
    return " ".join(
        f"--run {run} {RESULTS}/{run}/semantic/pred_target_{VAL_SPLIT}.h5" + (f" {RESULTS}/{run}/panoptic" if INSTANCES else "")
        for run in RUNS
    )


def tree_runs(seed, experiment=None):
    """The runs of a tree: a variant's rounds 1..R, or round 0, the rounds, translated and the
    oracle of a seed's main tree."""
    prefix = tree_path(seed, experiment)
    return [f"{prefix}round{r}" for r in ROUNDS] if experiment is not None else [prefix + run for run in RUNS]


def extra_runs():
    """Every run beyond the first seed's main ones: the other seeds' and the variants'."""
    trees = [(seed, experiment) for seed in SEEDS for experiment in [None] + EXPERIMENTS]
    return [run for seed, experiment in trees[1:] for run in tree_runs(seed, experiment)]


def ablation_entries():
    """(variant, seed, metric CSV) of every run of every tree; a variant also lists its seed's
    round 0 and oracle tables, which it shares with the main rounds."""
    tasks = ("semantic", "instance", "panoptic") if INSTANCES else ("semantic",)
    shared = ["round0"] + (["oracle"] if ORACLE else [])
    entries = []
    for experiment in [None] + EXPERIMENTS:
        for seed in SEEDS:
            runs = tree_runs(seed, experiment) + ([tree_path(seed) + run for run in shared] if experiment else [])
            entries += [(experiment or "main", seed, f"{RESULTS}/{run}/eval/{task}.csv") for run in runs for task in tasks]
    return entries


def ablation_options(wildcards):
    return " ".join(f"--table {variant} {seed} {shlex.quote(path)}" for variant, seed, path in ablation_entries())


def final_outputs():
    caches = ["source"] + [f"target_{split}" for split in TARGET_SPLITS]
    return (
        [f"{RESULTS}/data/cache/{name}.h5" for name in caches]
        + [f"{RESULTS}/data/mixing_stats.md"]
        # without val labels, the val predictions are the results (nothing to score them against)
        + ([f"{RESULTS}/summary/report.md"] if VAL_LABELLED else [])
        + [f"{RESULTS}/{run}/semantic/pred_target_{split}.h5" for run in RUNS for split in TARGET_SPLITS]
        + [f"{RESULTS}/{run}/semantic/labelIds" for run in RUNS]
        + ([f"{RESULTS}/{run}/instance/official" for run in RUNS] if INSTANCES else [])
        + [f"{RESULTS}/round{r}/pseudo/audit.txt" for r in ROUNDS]
        # the other seeds and the variants: scored in the ablation table, their pseudo-labels audited
        + ([f"{RESULTS}/summary/ablation.csv"] if VAL_LABELLED else [])
        + [f"{RESULTS}/{run}/pseudo/audit.txt" for run in extra_runs() if re.search(r"round[1-9][0-9]*$", run)]
        + ([f"{RESULTS}/translation/fidelity.csv"] if TRANSLATED else [])
    )


# Source protocols (mixing.sources): which indexes mixing reads, and what exists without instances.


def source_indexes(wildcards):
    """Inputs of mixing: ``base`` (every image taken) and, for the two-source mix, ``extra`` (gta, filtered)."""
    names = dict(zip(("base", "extra"), SOURCES))
    return {role: f"{RESULTS}/data/index/{name}_all.csv" for role, name in names.items()}


def extra_option(wildcards, input):
    """``--extra INDEX`` of the two-source mix, else nothing."""
    extra = input.get("extra")
    return f"--extra {shlex.quote(extra)}" if extra else ""


def panoptic_folders():
    """The fused panoptic folder of every run, when the run has instance stages."""
    return [f"{RESULTS}/{run}/panoptic" for run in RUNS] if INSTANCES else []


def pseudo_instance_labels(wildcards):
    """Round r's instance pseudo-labels for its audit, when the run has instance stages."""
    return f"{RESULTS}/{wildcards.tree}round{wildcards.r}/pseudo/instance_target_{TRAIN_SPLIT}.h5" if INSTANCES else []


# Label-to-image translation (mixing.translated > 0): the labels the translator learns from.


def translation_run():
    """The run whose labels teach the translator and whose model scores its fidelity (round0 for ground_truth)."""
    chosen = TRANSLATION["labels_from"]
    return "round0" if chosen == "ground_truth" else chosen


def translation_labels(wildcards):
    """The label maps of the target train images the translator learns from: the chosen round's
    prediction or pseudo-labels; none for ground_truth (the cache's own labels)."""
    if TRANSLATION["labels_from"] == "ground_truth":
        return []
    run = translation_run()
    if TRANSLATION["labels"] == "pseudo":
        return f"{RESULTS}/{run}/pseudo/semantic_target_{TRAIN_SPLIT}.h5"
    return f"{RESULTS}/{run}/semantic/pred_target_{TRAIN_SPLIT}.h5"


def translation_labels_option(wildcards, input):
    return f"--labels {shlex.quote(input.labels)}" if input.labels else ""


def translation_outputs():
    """The report's translation inputs (fidelity table, sample grid), when translation is on."""
    if not TRANSLATED:
        return {}
    return {"fidelity": f"{RESULTS}/translation/fidelity.csv", "grid": f"{RESULTS}/translation/samples.png"}


def translation_report_option(wildcards, input):
    """``--translation TABLE GRID`` of the report, when translation is on."""
    if not TRANSLATED:
        return ""
    return f"--translation {shlex.quote(input.fidelity)} {shlex.quote(input.grid)}"
