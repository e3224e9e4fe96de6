"""What the jobs will need from the machines they run on, checked once at workflow start.

Two things used to stop a run only inside its first job that needed them, after the data jobs
had run for hours: ``device: cuda`` on a machine without CUDA, and an ``init`` (``imagenet`` or a
path) whose weight file is missing. :func:`preflight_problems` finds both, for every run of the
plan (an experiment may change a model's ``backbone`` or ``init``), and
:func:`selfpanoptic.workflow.setup_workflow` raises them as one
:class:`~selfpanoptic.errors.InputError` that lists them all, each with its fix, before any job.

The function is pure apart from looking for files: the facts about the host come in as
arguments (whether CUDA is available, where the jobs run, ``$TORCH_HOME``), so that it is tested
on hand-made configs. Where the jobs run (:data:`JOBS`):

- ``here``: Snakemake runs them on this machine: ``device: cuda`` needs CUDA here.
- ``submitted``: an executor (SLURM) submits them to other machines: the submit host usually has
  no GPU, so CUDA is not checked (each GPU job checks its own node when it starts). The weight
  files are still checked here: Snakemake's SLURM executor assumes a shared file system and submits
  with ``--export=ALL`` (the jobs inherit this shell's environment, ``$TORCH_HOME`` included), so a
  file missing here is missing in the jobs too.
- ``unknown``: Snakemake was started in a way that does not tell (its Python API): weights are
  checked, CUDA is not.

Nothing here loads a weight file: only whether the file :func:`~selfpanoptic.models.pretrained.resolve_weights`
would load exists. Whether it fits the model is found when the job builds it.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import has_instances
from .errors import InputError
from .runs import RunPlan

__all__ = ["JOBS", "Problem", "WeightInit", "combined_error", "cuda_available", "device_problems",
           "preflight_problems", "weight_inits", "weight_problems"]

JOBS: tuple[str, ...] = ("here", "submitted", "unknown")
"""Where the jobs run: on this machine, submitted to a cluster, or not known (see the module text)."""

MODEL_SECTIONS: tuple[str, ...] = ("semantic", "instance")
"""The config sections whose ``model.init`` initialises a model of the pretraining runs."""


@dataclass(frozen=True)
class Problem:
    """Something a job would stop on: what is wrong (naming the config key and every path looked
    at) and how to fix it."""

    text: str
    fix: str

    @classmethod
    def of(cls, error: InputError) -> Problem:
        """The problem an :class:`InputError` describes (its path, if any, leads the text)."""
        text = error.problem if error.path is None else f"{error.path}: {error.problem}"
        return cls(text, error.fix or "")


@dataclass(frozen=True)
class WeightInit:
    """A weight file a model ``init`` names: the config keys that name it, the backbone, the ``init``."""

    keys: tuple[str, ...]
    backbone: str
    init: str


def weight_inits(config: dict[str, Any], plan: RunPlan) -> list[WeightInit]:
    """Every (backbone, ``init``) of the plan's models that names a file (``init`` not ``none``).

    Models are built from ``init`` in the pretraining runs only (round 0, translated, oracle; the
    self-training rounds start from a run's model files), and instance models only in runs with
    instance stages. Each is named by its config key: ``semantic.model.init``, or
    ``experiments.<E>.semantic.model.init`` where experiment ``E`` gives the model another backbone
    or ``init`` than the main runs' (``config``: the validated config the plan was made from).
    """
    found: dict[tuple[str, str], list[str]] = {}
    for run in plan.runs.values():
        if not run.pretraining:
            continue
        for section in MODEL_SECTIONS if has_instances(run.config) else ("semantic",):
            model = run.config[section]["model"]
            if model["init"] == "none":
                continue
            main = config[section]["model"]
            key = f"{section}.model.init"
            if run.experiment is not None and (model["backbone"], model["init"]) != (main["backbone"], main["init"]):
                key = f"experiments.{run.experiment}.{key}"
            keys = found.setdefault((model["backbone"], model["init"]), [])
            if key not in keys:
                keys.append(key)
    return [WeightInit(tuple(keys), backbone, init) for (backbone, init), keys in found.items()]


def weight_problems(inits: list[WeightInit], torch_home: str | Path | None = None) -> list[Problem]:
    """A problem for each of ``inits`` whose file is missing, in the words of
    :func:`~selfpanoptic.models.pretrained.resolve_weights` (every path looked at, where to get the
    file), led by the config keys. ``torch_home``: ``$TORCH_HOME``, where ``imagenet`` looks in
    ``hub/checkpoints``; None: torch's own reading of the environment. A relative path is looked
    for from the current folder, the workflow's working directory, where the jobs run too."""
    if not inits:
        return []
    from .models.pretrained import resolve_weights  # torch: imported only when some init names a file

    folder = None if torch_home is None else Path(torch_home) / "hub" / "checkpoints"
    problems = []
    for item in inits:
        try:
            resolve_weights(item.backbone, item.init, folder)
        except InputError as err:
            keys = f"{' and '.join(item.keys)} {'is' if len(item.keys) == 1 else 'are'} {item.init}"
            where = "" if item.init == "imagenet" or Path(item.init).is_absolute() else f", from {Path.cwd()}"
            problems.append(Problem(f"{keys} (backbone {item.backbone}{where}): {Problem.of(err).text}", err.fix or ""))
    return problems


def device_problems(device: str, jobs: str, cuda: bool | None) -> list[Problem]:
    """``device: cuda`` when the jobs run here (``jobs``, one of :data:`JOBS`) and CUDA is not
    available here (``cuda`` False; None: not known, not checked). ``auto`` falls back to the CPU
    with a message in the job's log, and ``cpu`` needs nothing."""
    if device != "cuda" or jobs != "here" or cuda is not False:
        return []
    return [Problem(
        "device is cuda, but CUDA is not available on this machine (torch.cuda.is_available() is False: no GPU, "
        "no CUDA build of torch, or a driver problem), and the jobs run here",
        "run on a machine with a working GPU; or set device: auto (the CPU, much slower: --config device=auto) "
        "or device: cpu; or submit the jobs to GPU nodes (--profile profiles/slurm, docs/gpus-and-slurm.md)")]


def preflight_problems(config: dict[str, Any], plan: RunPlan, *, jobs: str, cuda: bool | None,
                       torch_home: str | Path | None = None) -> list[Problem]:
    """Everything the plan's jobs would stop on for lack of a GPU or a weight file.

    Parameters
    ----------
    config : dict
        The validated config (source protocol applied), the one ``plan`` was made from.
    plan : RunPlan
        Its runs (:func:`selfpanoptic.runs.plan_runs`); each run's own sections count.
    jobs : str
        Where the jobs run: ``here``, ``submitted`` or ``unknown`` (:data:`JOBS`).
    cuda : bool or None
        Whether CUDA is available on this machine; None when not asked (no check).
    torch_home : str or Path or None
        ``$TORCH_HOME`` (``imagenet`` looks in its ``hub/checkpoints``); None: read by torch.

    Returns
    -------
    list of Problem
        The device's first, then one per missing weight file; empty when nothing is missing.
    """
    if jobs not in JOBS:
        raise ValueError(f"jobs must be one of {', '.join(JOBS)}, not {jobs!r}")
    return [*device_problems(config["device"], jobs, cuda), *weight_problems(weight_inits(config, plan), torch_home)]


def cuda_available() -> bool:
    """Whether torch sees a CUDA device here (imports torch: ask only when ``device: cuda``)."""
    import torch

    return torch.cuda.is_available()


def combined_error(problems: list[Problem], source: str) -> InputError:
    """One :class:`InputError` listing every problem with its fix, for the config ``source``."""
    def item(problem: Problem) -> str:
        text = problem.text + (f"\nfix: {problem.fix}" if problem.fix else "")
        return "  - " + textwrap.indent(text, "    ").lstrip()

    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return InputError(f"{count} found at workflow start, before any job ran; the jobs would stop on "
                      f"{'each' if len(problems) > 1 else 'it'}:\n" + "\n".join(map(item, problems)), source)
