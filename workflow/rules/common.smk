# Shared by the rules: the validated config, the run plan (selfpanoptic.runs), and thin input
# functions over it. Rules of a run have one wildcard, {run}: the run's folder in the plan.

import json
import os
import shlex
import sys

from snakemake.common.configfile import load_configfile
from snakemake.exceptions import WorkflowError

from selfpanoptic.config import guidance_mode, source_datasets
from selfpanoptic.config_checks import training_processes
from selfpanoptic.config_sources import read_config_file
from selfpanoptic.errors import InputError
from selfpanoptic.gpus import JOBS_PER_GPU_VARIABLE
from selfpanoptic.provenance import stage_code_hash
from selfpanoptic.runs import folder_pattern
from selfpanoptic.workflow import jobs_host, setup_workflow, validates

# Snakemake merged config.yaml, each --configfile and --config key by key; maps whose keys the
# user chooses (instance.groups, experiments) must come whole from the last layer that sets them.
# Every config file read (config.yaml, the Snakefile's configfile, and each --configfile) is read
# strictly first: a key written twice, or an unquoted `off:` key, is an error, not a silent loss.
_read_files = [*getattr(workflow, "configfiles", []), *workflow.config_settings.configfiles,
               os.path.join(workflow.basedir, "config.yaml")]
try:
    for _file in dict.fromkeys(os.path.abspath(str(f)) for f in _read_files):
        if os.path.exists(_file):
            _shown = os.path.relpath(_file)
            read_config_file(_file if _shown.startswith("..") else _shown)
    _layers = [load_configfile(str(f)) for f in workflow.config_settings.configfiles]
    # jobs_host: whether the jobs run here (device: cuda needs CUDA here) or are submitted (SLURM);
    # every weight file an `init` names is checked either way (shared file system)
    SETUP = setup_workflow(config, _layers, dict(workflow.config_settings.config), jobs_host(workflow))
except InputError as err:
    raise WorkflowError(str(err))
for _note in SETUP.notes:
    print(_note, file=sys.stderr)
config.clear()
config.update(SETUP.config)
# in the environment, not params: params would rerun jobs when it changes
os.environ[JOBS_PER_GPU_VARIABLE] = str(config["resources"]["jobs_per_gpu"])

RESULTS, ENV, TOY = config["results"], "../../envs/selfpanoptic.yaml", config["toy"]["enabled"]
SOURCES, TARGET = source_datasets(config), config["datasets"]["target"]
INSTANCES, VAL_LABELLED, PLAN = SETUP.instances, SETUP.val_labelled, SETUP.plan
DATASET_FORMATS = {"synthia": "synthia", "gta": "gta5", "target": TARGET["format"]}
TRAIN_SPLIT, VAL_SPLIT = TARGET["train_split"], TARGET["val_split"]
TARGET_SPLITS = [TRAIN_SPLIT, VAL_SPLIT]
TRANSLATED, TRANSLATION = config["mixing"]["translated"] > 0, config["translation"]
ORACLE, GROUPS = "oracle" in PLAN.main.folder_of, list(config["instance"]["groups"])
RUNS = list(PLAN.main.folder_of.values())  # the first seed's main runs: metrics table and report
TASKS = ("semantic", "instance", "panoptic") if INSTANCES else ("semantic",)
# the metric tables of a run: its scores on val, and the label-free scores on target train
SCORED = TASKS + ("label_free",)
AUTO_ROUNDS = config["selftrain"]["rounds"] == "auto"  # a round chosen by a label-free score
GAN = config["semantic_gan"]


def _gan_runs():
    """SemanticGAN's runs of each seed's main tree: folder -> its name (gan_encoder: the encoder
    alone; gan_inversion: with test-time inversion; gan_samples: round 0's semantic model trained
    with sampled pairs), the folder of the seed's generator and encoder, the run whose labels taught
    it, and the run whose instance models and settings the run uses (``models``: the labelling run
    for a readout, round 0 for gan_samples)."""
    runs = {}
    for tree in PLAN.trees if GAN["enabled"] else []:
        if tree.experiment is None:
            shared = {"gan": f"{tree.prefix}semantic_gan", "seed": tree.seed, "prefix": tree.prefix,
                      "labels": tree.folder_of[GAN["labels_from"]], "oracle": tree.folder_of.get("oracle")}
            for name in ("gan_encoder", "gan_inversion"):
                runs[f"{tree.prefix}{name}"] = {"name": name, **shared, "models": shared["labels"]}
            if GAN["source_share"] > 0:
                runs[f"{tree.prefix}gan_samples"] = {"name": "gan_samples", **shared, "models": tree.folder_of["round0"]}
    return runs


GAN_RUNS = _gan_runs()
GAN_FOLDERS = sorted({run["gan"] for run in GAN_RUNS.values()})
MAIN_GAN_RUNS = [folder for folder, run in GAN_RUNS.items() if run["seed"] == PLAN.main.seed]  # in metrics.csv
READOUT_RUNS = [folder for folder, run in GAN_RUNS.items() if run["name"] != "gan_samples"]
SAMPLED_RUNS = [folder for folder, run in GAN_RUNS.items() if run["name"] == "gan_samples"]


def gan_folder_run(gan):
    """A readout run of the SemanticGAN folder ``gan`` (what its seed's entries share)."""
    return next(run for run in GAN_RUNS.values() if run["gan"] == gan)


def runs_where(select, sampled=False):
    """The ``{run}`` wildcard limited to the plan's runs for which ``select(run)`` holds (and with
    ``sampled``, the gan_samples runs for which it holds of their ``models`` run, round 0)."""
    folders = [folder for folder, run in PLAN.runs.items() if select(run)]
    folders += [folder for folder in SAMPLED_RUNS if select(model_run(folder))] if sampled else []
    return f"{{run,{folder_pattern(folders)}}}"


def co_learning(run):
    """Whether the run's semantic training generates images too (a co_learning.png output)."""
    section = run.config["semantic"] if run.pretraining else run.config["selftrain"]["semantic"]
    return section["co_learning"]["enabled"]


# a Cityscapes target ships its panoptic ground truth; an image folder's is made from its val labels
_GT_FINE = f"{RESULTS}/data/panoptic_gt" if TARGET["format"] == "images" else f'{TARGET["root"]}/gtFine'
PANOPTIC_GT_JSON = f"{_GT_FINE}/cityscapes_panoptic_{VAL_SPLIT}.json"
PANOPTIC_GT_FOLDER = f"{_GT_FINE}/cityscapes_panoptic_{VAL_SPLIT}"
PANOPTIC_GT_INPUT = [PANOPTIC_GT_JSON, PANOPTIC_GT_FOLDER] if TARGET["format"] == "images" else TARGET["root"]


def job_resources(kind):
    """Scheduler resources of a kind of job (train, predict, data); threads are separate. A
    training job's ``processes`` is its number of ranks (0 in the config: one per GPU)."""
    resources = {key: value for key, value in config["resources"][kind].items() if key != "threads"}
    if kind == "train":
        resources["processes"] = training_processes(config)
    return resources


def job_threads(kind):
    return config["resources"][kind]["threads"]


def settings_option(section, parts=None, value=None):
    """``--<section>-settings '<json>'`` of a config section (or the named ``parts`` of it): a
    changed param reruns a job, so a stage gets only its own sections, and its descendants rerun."""
    value = config[section] if value is None else value
    value = value if parts is None else {part: value[part] for part in parts}
    return f"--{section}-settings {shlex.quote(json.dumps(value, sort_keys=True, separators=(',', ':')))}"


def model_run(folder):
    """The plan's run whose models and settings a run folder uses: itself, or for a SemanticGAN run
    its ``models`` run (a readout: the run whose labels taught it; gan_samples: round 0)."""
    return PLAN.run(GAN_RUNS[folder]["models"] if folder in GAN_RUNS else folder)


def run_name(wildcards):
    """The name of the job's run in the metrics tables (round0, ..., oracle, gan_samples, gan_encoder, gan_inversion)."""
    return GAN_RUNS[wildcards.run]["name"] if wildcards.run in GAN_RUNS else PLAN.run(wildcards.run).name


def run_settings(section, parts=None):
    """:func:`settings_option` of the section as the job's run has it (its experiment, its seed)."""
    return lambda wildcards: settings_option(section, parts, model_run(wildcards.run).config[section])


def stage_params(command, *settings):
    """``code`` (a hash of the stage module's import closure: editing a module it uses reruns
    it) and ``settings`` (the settings options, each a string or a function of the wildcards)."""
    joined = lambda wildcards: " ".join(option(wildcards) if callable(option) else option for option in settings)
    return {"code": stage_code_hash(command), "settings": joined if any(map(callable, settings)) else " ".join(settings)}


def optional(flag, name, suffix=""):
    """Params function: ``FLAG 'PATH'`` (and ``suffix``) when the input ``name`` is present, else nothing."""
    return lambda wildcards, input: f"{flag} {shlex.quote(input[name])}{suffix}" if input.get(name) else ""


def start_path(relative):
    """Input function: a file of the run the job's run self-trains from."""
    return lambda wildcards: f"{RESULTS}/{PLAN.run(wildcards.run).start}/{relative.format(**wildcards)}"


def instance_models(folder):
    return [f"{RESULTS}/{folder}/instance/{group}/model.pt" for group in GROUPS]


def previous_prediction(wildcards):
    """The prediction on the target train images of the run a self-training round starts from."""
    start = PLAN.run(wildcards.run).start
    return f"{RESULTS}/{start}/semantic/pred_target_{TRAIN_SPLIT}.h5" if start else []


def guidance_input(wildcards):
    """The start run's instance prediction on the target train images, when it guides the round."""
    run = PLAN.run(wildcards.run)
    if guidance_mode(run.config["selftrain"]["guidance"], run.round) != "predicted":
        return []
    return f"{RESULTS}/{run.start}/instance/pred_target_{TRAIN_SPLIT}.h5"


def training_inputs(wildcards):
    """The caches a pretraining run learns from: the mixed source (the oracle: the target train
    labels), the translated source for the run `translated`, the sampled pairs for `gan_samples`."""
    if wildcards.run in SAMPLED_RUNS:
        return {"data": f"{RESULTS}/data/cache/source.h5",
                "sampled": f"{RESULTS}/{GAN_RUNS[wildcards.run]['gan']}/samples.h5"}
    run = PLAN.run(wildcards.run)
    inputs = {"data": f"{RESULTS}/data/cache/{f'target_{TRAIN_SPLIT}' if run.name == 'oracle' else 'source'}.h5"}
    if run.name == "translated":
        inputs["translated"] = f"{RESULTS}/data/cache/translated_source.h5"
    return inputs


def co_learning_target(wildcards):
    """The target train cache whose images pretraining's co-learning also generates, when it does."""
    section = model_run(wildcards.run).config["semantic"]["co_learning"]
    return f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5" if section["enabled"] and section["target_batch_size"] else []


def validation_cache(*keys):
    """Input function: the target val cache when the run's ``train`` section under ``keys``
    (e.g. ``"selftrain", "semantic"``) validates."""
    return lambda wildcards: f"{RESULTS}/data/cache/target_{VAL_SPLIT}.h5" if validates(model_run(wildcards.run).config, keys) else []


def co_learning_figures():
    """Run -> co-learning figure, of the main runs trained with co-learning (for the report)."""
    return {name: f"{RESULTS}/{name}/semantic/co_learning.png" for name in RUNS if co_learning(PLAN.run(name))}


def report_runs(wildcards):
    """--run options of the report: label, semantic prediction and panoptic folder of each main run."""
    return " ".join(f"--run {run} {shlex.quote(f'{RESULTS}/{run}/semantic/pred_target_{VAL_SPLIT}.h5')}"
                    + (f" {shlex.quote(f'{RESULTS}/{run}/panoptic')}" if INSTANCES else "") for run in RUNS)


def ablation_entries():
    """(experiment, seed, metrics CSV) of every run of every tree, shared runs included, and of the
    SemanticGAN readouts (experiment ``main``)."""
    return [(tree.label, tree.seed, f"{RESULTS}/{folder}/eval/{task}.csv")
            for tree in PLAN.trees for folder in tree.folder_of.values() for task in SCORED] + [
        ("main", run["seed"], f"{RESULTS}/{folder}/eval/{task}.csv") for folder, run in GAN_RUNS.items() for task in TASKS]


def final_outputs():
    caches = ["source"] + [f"target_{split}" for split in TARGET_SPLITS]
    return (
        [f"{RESULTS}/data/cache/{name}.h5" for name in caches]
        + [f"{RESULTS}/data/mixing_stats.md"]
        # without val labels, the val predictions are the results (nothing to score them against)
        + ([f"{RESULTS}/summary/report.md", f"{RESULTS}/summary/ablation.csv"] if VAL_LABELLED else [])
        + [f"{RESULTS}/{run}/semantic/pred_target_{split}.h5" for run in RUNS for split in TARGET_SPLITS]
        + [f"{RESULTS}/{run}/semantic/labelIds" for run in RUNS]
        + ([f"{RESULTS}/{run}/instance/official" for run in RUNS] if INSTANCES else [])
        + [f"{RESULTS}/{run.folder}/pseudo/audit.txt" for run in PLAN.self_training_runs()]
        + ([f"{RESULTS}/translation/fidelity.csv"] if TRANSLATED else [])
        + ([f"{RESULTS}/summary/selected_round.json"] if AUTO_ROUNDS else [])
        + [f"{RESULTS}/{folder}/eval/{task}.csv" for folder in GAN_RUNS for task in TASKS]
        + [f"{RESULTS}/{folder}/samples.png" for folder in GAN_FOLDERS]
    )


def selection_rounds():
    """(folder, label-free table) of round 0 and each round of the main runs, in order."""
    return [(folder, f"{RESULTS}/{folder}/eval/label_free.csv") for name, folder in PLAN.main.folder_of.items()
            if name.startswith("round")]


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
    """The manifest a cache is built from: the mixed or translated source, or a target split's index."""
    named = {"source": "data/mixed_source.csv", "translated_source": "data/translated_source.csv"}
    return f"{RESULTS}/{named.get(wildcards.name, f'data/index/{wildcards.name}.csv')}"


# the run whose labels teach the translator (none for ground_truth) and whose model scores it
TRANSLATION_RUN = "round0" if TRANSLATION["labels_from"] == "ground_truth" else TRANSLATION["labels_from"]


def translation_labels(wildcards):
    """The translator's label maps of the target train images: the run's prediction or pseudo-labels."""
    if TRANSLATION["labels_from"] == "ground_truth":
        return []
    kind = "pseudo/semantic" if TRANSLATION["labels"] == "pseudo" else "semantic/pred"
    return f"{RESULTS}/{TRANSLATION_RUN}/{kind}_target_{TRAIN_SPLIT}.h5"


def translation_outputs():
    """The report's translation inputs (fidelity table, sample grid), when translation is on."""
    return {"fidelity": f"{RESULTS}/translation/fidelity.csv", "grid": f"{RESULTS}/translation/samples.png"} if TRANSLATED else {}


def gan_data_inputs(wildcards):
    """What a SemanticGAN folder's generator and encoder learn from (semantic_gan.pairs)."""
    run = gan_folder_run(wildcards.gan)
    inputs = {"target": f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5"}
    if GAN["pairs"] == "pseudo":
        kind = "pseudo/semantic" if GAN["labels"] == "pseudo" else "semantic/pred"
        inputs["labels"] = f"{RESULTS}/{run['labels']}/{kind}_target_{TRAIN_SPLIT}.h5"
    elif GAN["pairs"] == "source":
        inputs["source"] = f"{RESULTS}/data/cache/source.h5"
    elif GAN["pairs"] == "translated":
        inputs["translated"] = f"{RESULTS}/data/cache/translated_source.h5"
    return inputs


def gan_settings(*parts):
    """``--semantic_gan-settings`` of a SemanticGAN folder's seed (only ``parts`` of the section)."""
    def option(wildcards):
        folder = wildcards.gan if hasattr(wildcards, "gan") else GAN_RUNS[wildcards.run]["gan"]
        run = gan_folder_run(folder)
        return settings_option("semantic_gan", list(parts), PLAN.run(run["labels"]).config["semantic_gan"])

    return option


def readout_settings(wildcards):
    """``--semantic_gan-settings`` of a readout run: the inversion and the grid; gan_encoder takes
    0 steps and only what 0 steps read, so a change of the optimisation reruns gan_inversion alone."""
    run = GAN_RUNS[wildcards.run]
    section = PLAN.run(run["labels"]).config["semantic_gan"]
    inversion = section["inversion"]
    if run["name"] == "gan_encoder":
        inversion = {"steps": 0, "batch_size": inversion["batch_size"], "mse": inversion["mse"]}
    return settings_option("semantic_gan", value={"inversion": inversion, "grid": section["grid"]})


def gan_outputs():
    """The report's SemanticGAN inputs of the first seed (fidelity table, sample and inversion grids)."""
    if not GAN_RUNS:
        return {}
    first = next(iter(GAN_RUNS.values()))
    outputs = {"gan_samples": f"{RESULTS}/{first['gan']}/samples.png",
               "gan_inversions": f"{RESULTS}/{first['prefix']}gan_inversion/semantic/readout_{VAL_SPLIT}.png"}
    return outputs | ({"gan_fidelity": f"{RESULTS}/{first['gan']}/fidelity.csv"} if ORACLE else {})
