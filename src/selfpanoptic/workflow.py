"""What the Snakemake workflow decides once, when it starts: the checked config and its run plan.

:func:`setup_workflow` validates the merged config, checks the datasets it names, applies the
source protocol, decides which runs exist (an oracle needs target train labels, scores need val
labels) and plans them (:mod:`selfpanoptic.runs`). It raises :class:`InputError` for anything
the user must fix, so the workflow stops before the first job; ``notes`` are what it should say.
Given where the jobs run (:func:`jobs_host`), it also checks what they will need from the machines
(:mod:`selfpanoptic.preflight`: CUDA for ``device: cuda``, the weight files ``init`` names) and
lists every such problem, with any missing dataset file, in one error.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import compose_configs, has_instances, load_schema, overlay, protocol_config, validate_config
from .config_sources import command_line_config
from .data.labelled import target_split_labelled
from .data.required import check_required_dataset_files
from .errors import InputError
from .preflight import Problem, combined_error, cuda_available, preflight_problems
from .runs import RunPlan, experiments_like_main, plan_runs
from .toy.domains import check_toy_roots

SOURCE = "config (config.yaml, --configfile and --config)"


@dataclass(frozen=True)
class WorkflowSetup:
    """The checked config and what follows from it.

    Attributes
    ----------
    config : dict
        The validated config, defaults filled in and the source protocol applied.
    plan : RunPlan
        Every run and tree.
    instances : bool
        Whether runs have instance stages (a source with instance labels).
    train_labelled, val_labelled : bool
        Whether the target train / val split has labels (oracle and grading / scores).
    notes : list of str
        Messages for the user (skipped runs, forced settings).
    """

    config: dict[str, Any]
    plan: RunPlan
    instances: bool
    train_labelled: bool
    val_labelled: bool
    notes: list[str] = field(default_factory=list)


def setup_workflow(merged: dict[str, Any], layers: list[dict[str, Any]],
                   command_line: dict[str, Any] | None = None, jobs: str | None = None) -> WorkflowSetup:
    """Validate and plan the config Snakemake merged from ``layers`` (see :func:`compose_configs`).

    ``command_line``: the ``--config`` values as Snakemake parsed them, its last layer; they are
    typed by the schema (:func:`~selfpanoptic.config_sources.command_line_config`: ``seeds=[0,1]``
    arrives as text) and laid over ``merged`` again.

    ``jobs``: where the jobs run, ``here``, ``submitted`` or ``unknown`` (:func:`jobs_host`), to
    check what they need from the machines (:func:`~selfpanoptic.preflight.preflight_problems`);
    None (a job's own Snakemake process, or a caller that only plans) skips those checks.
    """
    if command_line is not None:
        command_line = command_line_config(command_line, load_schema())
        merged, layers = overlay(merged, command_line), [*layers, command_line]
    config = validate_config(compose_configs(merged, layers), SOURCE)
    if Path(config["results"]).is_file():
        raise InputError(f"results {config['results']!r} is an existing file, but it must be the folder that receives "
                         "every output", SOURCE, "set results to a folder (a new one is created), or move the file away")
    check_toy_roots(config)
    try:
        check_required_dataset_files(config)
    except InputError as missing:
        # the datasets decide which runs exist (the oracle), not which models they build: the plan
        # without oracle names every weight file, so that one message lists all that is missing
        protocol = protocol_config(config)[0]
        problems = _host_problems(protocol, plan_runs(protocol, False), jobs)
        if problems:
            raise combined_error([Problem.of(missing), *problems], SOURCE) from None
        raise
    config, note = protocol_config(config)
    notes = [note] if note else []
    target, toy = config["datasets"]["target"], config["toy"]["enabled"]
    train_labelled = target_split_labelled(target, "train", toy)
    val_labelled = target_split_labelled(target, "val", toy)
    notes += _same_images_notes(target, config["oracle"] and train_labelled)
    translation = config["translation"]
    if config["mixing"]["translated"] > 0 and translation["labels_from"] == "ground_truth" and not train_labelled:
        raise InputError("translation.labels_from is ground_truth, but the target train split has no labels", SOURCE,
                         "set translation.labels_from to a round (round0, round1, ...)")
    gan = config["semantic_gan"]
    if gan["enabled"] and gan["pairs"] == "target_labels" and not train_labelled:
        raise InputError("semantic_gan.pairs is target_labels, but the target train split has no labels", SOURCE,
                         "choose semantic_gan.pairs: pseudo (a round's labels) or source")
    if config["oracle"] and not train_labelled:
        notes.append("selfpanoptic: the target train split has no labels: no oracle run, and the pseudo-label "
                     "audits describe the pseudo-labels without grading them")
    if not val_labelled:
        notes.append("selfpanoptic: the target val split has no labels: models predict on it, but evaluation, "
                     "metrics and the report are skipped (labels: datasets.target.val_labels or gtFine/<val_split>)")
    plan = plan_runs(config, config["oracle"] and train_labelled)
    if not train_labelled:
        _check_no_ground_truth_guidance(plan)
    if alike := experiments_like_main(plan):
        notes.append(f"selfpanoptic: experiment(s) {', '.join(alike)} change nothing under this config (the settings "
                     "they change are forced or already the main runs'): their runs train the main runs again")
    for keys in (("semantic",), ("instance",), ("selftrain", "semantic"), ("selftrain", "instance")):
        if not val_labelled and any(validates(run.config, keys) for run in plan.runs.values()):
            raise InputError(f"{'.'.join(keys)}.train.validate_every > 0 validates on the target val labels, which "
                             "this target lacks", SOURCE, "set it to 0 (in experiments too), or give the val split labels")
    if problems := _host_problems(config, plan, jobs):
        raise combined_error(problems, SOURCE)
    if jobs == "unknown" and config["device"] == "cuda":
        notes.append("selfpanoptic: cannot tell whether the jobs run on this machine or are submitted: device: cuda "
                     "is not checked here (each job stops at its start without CUDA)")
    return WorkflowSetup(config, plan, has_instances(config), train_labelled, val_labelled, notes)


def _host_problems(config: dict[str, Any], plan: RunPlan, jobs: str | None) -> list[Problem]:
    """:func:`~selfpanoptic.preflight.preflight_problems` with this machine's facts (CUDA asked
    for only when it matters: importing torch takes a second); none when ``jobs`` is None."""
    if jobs is None:
        return []
    cuda = cuda_available() if jobs == "here" and config["device"] == "cuda" else None
    return preflight_problems(config, plan, jobs=jobs, cuda=cuda)


def jobs_host(workflow: Any) -> str | None:
    """Where the jobs of the Snakemake ``workflow`` (the Snakefile's ``workflow`` object) run.

    ``here`` (the local executor, dry runs of it included), ``submitted`` (an executor that sends
    them to other machines: SLURM), ``unknown`` (Snakemake started from its Python API), or None in
    a job's own Snakemake process (on a cluster node, or a local job's subprocess), which checks
    nothing again. Snakemake parses the Snakefile before it hands over its executor
    (``workflow.executor_plugin`` is still None here), so the executor's name is read from the
    options its command line parsed (``--executor``, or a profile's ``executor:``): the arguments
    of ``snakemake.cli.args_to_api``, up the call stack. Should a Snakemake release rename it, the
    answer is ``unknown``: weights are still checked, CUDA is left to the jobs.
    """
    if not getattr(workflow, "is_main_process", True):
        return None
    name = _command_line_executor()
    if name is None:
        return "unknown"
    try:
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

        local = ExecutorPluginRegistry().get_plugin(name).common_settings.local_exec
    except Exception:  # an executor the registry does not know: Snakemake itself refuses it next
        return "unknown"
    return "here" if local else "submitted"


def _command_line_executor() -> str | None:
    """``--executor`` as Snakemake's command line parsed it ("local" by default), None outside it."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "args_to_api" and frame.f_globals.get("__name__") == "snakemake.cli":
            executor = getattr(frame.f_locals.get("args"), "executor", None)
            return executor if isinstance(executor, str) else None
        frame = frame.f_back
    return None


def _same_images_notes(target: dict[str, Any], oracle: bool) -> list[str]:
    """A warning when the target's train and val images are the same (split names for cityscapes,
    globs for an image folder): allowed, as transductive adaptation does it on purpose, but its
    scores are then not held-out (nor the oracle's, when there is one)."""
    keys = ("train_glob", "val_glob") if target["format"] == "images" else ("train_split", "val_split")
    if target[keys[0]] != target[keys[1]]:
        return []
    also = " (and the oracle from their labels)" if oracle else ""
    return [f"selfpanoptic: warning: datasets.target.{keys[0]} and datasets.target.{keys[1]} are both "
            f"{target[keys[0]]!r}: self-training learns from the very images it is scored on{also}, so the scores "
            f"are not held-out (transductive adaptation); give datasets.target.{keys[1]} other images for held-out "
            "scores"]


def _check_no_ground_truth_guidance(plan: RunPlan) -> None:
    """Refuse ground-truth instance guidance (``gt_instance_fraction`` > 0) in any run of ``plan``,
    whose target train split has no labels: it would silently guide nothing."""
    for run in plan.runs.values():
        fraction = run.config["selftrain"]["guidance"]["gt_instance_fraction"]
        if fraction > 0:
            where = f"experiments.{run.experiment}.selftrain" if run.experiment else "selftrain"
            raise InputError(f"{where}.guidance.gt_instance_fraction is {fraction}: guidance by ground-truth instances, "
                             "but the target train split has no labels", SOURCE,
                             f"set {where}.guidance.gt_instance_fraction: 0, or give the target train split labels "
                             "(a cityscapes target with gtFine/<train_split>)")


def validates(config: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Whether the ``train`` section under ``keys`` of a run's config validates (``validate_every`` > 0)."""
    for key in keys:
        config = config[key]
    return config["train"]["validate_every"] > 0
