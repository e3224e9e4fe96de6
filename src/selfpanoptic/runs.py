"""The run plan: every run a validated config asks for, as data.

A *run* is one set of trained models and everything predicted, fused and scored with them:
``round0`` (source pretraining), ``translated`` (round 0's models trained on the
label-to-image translated mix), ``oracle`` (trained on the target train labels) and the
self-training rounds ``round1`` ... ``round<R>``. Runs live in *trees*, one per (seed,
experiment): the first seed's main tree is the results folder itself, seed ``s`` lives under
``seed<s>/`` and experiment ``E`` under ``experiments/<E>/`` (or ``seed<s>/experiments/<E>/``).

An experiment changes config sections (:data:`EXPERIMENT_SECTIONS`). One that changes a
section the pretraining runs depend on (:data:`PRETRAINING_SECTIONS`) gets its own round 0,
translated run and oracle; one that changes only ``selftrain`` shares them with its seed's main
tree, so it costs its own rounds only. Each run carries the whole config it runs with: the
experiment's sections laid over the config, the seed added to every training seed, and the
source protocol's forced settings.

:func:`plan_runs` builds the plan. The workflow reads it for everything that depends on the runs
(``workflow/rules/common.smk``: the rules' inputs and settings, the ablation table's entries, the
report's runs), and ``benchmarks/bench_method_time.py`` for the training time of a config. It
imports nothing from Snakemake, so it is tested on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .config import (EXPERIMENT_SECTIONS, PRETRAINING_SECTIONS, SEEDED_SECTIONS, overlay, protocol_config, round_count,
                     seeded)

__all__ = ["EXPERIMENT_SECTIONS", "PRETRAINING_SECTIONS", "SEEDED_SECTIONS", "Run", "RunPlan", "Tree", "plan_runs",
           "run_config"]

PRETRAINING_RUNS: tuple[str, ...] = ("round0", "translated", "oracle")
"""Names of the runs trained from scratch (the others self-train from a run before them)."""


@dataclass(frozen=True)
class Run:
    """One run of the plan.

    Attributes
    ----------
    name : str
        ``round0``, ``round<r>``, ``translated`` or ``oracle``.
    seed : int
        The seed of its tree (an entry of ``seeds``), added to every training seed.
    experiment : str or None
        The experiment of its tree (None: the main tree).
    folder : str
        Its folder relative to the results folder, e.g. ``seed1/experiments/no_guidance/round2``.
    start : str or None
        The folder of the run it self-trains from (None for pretraining runs).
    config : dict
        The whole validated config it runs with (experiment, seed and protocol applied). Treat
        as read-only.
    """

    name: str
    seed: int
    experiment: str | None
    folder: str
    start: str | None
    config: dict[str, Any] = field(repr=False, compare=False)

    @property
    def pretraining(self) -> bool:
        """Whether its models train from scratch (round 0, translated, oracle)."""
        return self.name in PRETRAINING_RUNS

    @property
    def round(self) -> int | None:
        """The self-training round (1, 2, ...), 0 for round 0, None for translated and oracle."""
        match = re.fullmatch(r"round([0-9]+)", self.name)
        return int(match[1]) if match else None


@dataclass(frozen=True)
class Tree:
    """The runs of one (seed, experiment) pair, own and shared.

    ``folder_of`` maps each run name of the tree (in the metrics table's order: round 0, the rounds,
    translated, oracle) to the folder that holds it: its own, or its seed's main tree's for the
    pretraining runs an experiment shares.
    """

    seed: int
    experiment: str | None
    prefix: str
    folder_of: dict[str, str]

    @property
    def label(self) -> str:
        """The experiment's name in the ablation table (``main`` for the main tree)."""
        return self.experiment or "main"


@dataclass(frozen=True)
class RunPlan:
    """Every run and tree of a config, in a fixed order (seeds, then experiments, then runs)."""

    runs: dict[str, Run]
    trees: list[Tree]

    def run(self, folder: str) -> Run:
        """The run in ``folder`` (relative to the results folder)."""
        try:
            return self.runs[folder]
        except KeyError:
            raise KeyError(f"no run {folder!r} in the plan; runs: {', '.join(self.runs)}") from None

    @property
    def main(self) -> Tree:
        """The first seed's main tree: the results folder's own runs (metrics table, report)."""
        return self.trees[0]

    def folders(self, pretraining: bool | None = None) -> list[str]:
        """Folders of the runs the plan trains: all, or only pretraining / self-training ones."""
        return [f for f, run in self.runs.items() if pretraining is None or run.pretraining == pretraining]

    def self_training_runs(self) -> list[Run]:
        """Every self-training round of every tree."""
        return [run for run in self.runs.values() if not run.pretraining]


def tree_prefix(seed: int, experiment: str | None, first_seed: int) -> str:
    """The folder prefix of a tree: ``""``, ``seed<s>/``, ``experiments/<E>/`` or both."""
    return ("" if seed == first_seed else f"seed{seed}/") + ("" if experiment is None else f"experiments/{experiment}/")


def changes_pretraining(change: dict[str, Any]) -> bool:
    """Whether an experiment's change touches a section its pretraining runs depend on."""
    return any(section in change for section in PRETRAINING_SECTIONS)


def run_config(config: dict[str, Any], experiment: str | None, seed: int) -> dict[str, Any]:
    """The whole config a tree's runs run with.

    Parameters
    ----------
    config : dict
        A validated config (experiments filled in by :func:`selfpanoptic.config.validate_config`).
    experiment : str or None
        An experiment name of ``config["experiments"]``, or None for the main tree.
    seed : int
        The tree's seed, added to every ``train.seed`` of :data:`SEEDED_SECTIONS`.
    """
    change = {} if experiment is None else config["experiments"][experiment]
    merged = overlay(config, change)
    for section in SEEDED_SECTIONS:
        merged[section] = seeded(merged[section], seed)
    merged, _ = protocol_config(merged)
    return merged


def pretraining_run_names(config: dict[str, Any], oracle: bool) -> list[str]:
    """The pretraining runs of a tree: round 0, translated (when translation is on), the oracle."""
    return ["round0"] + (["translated"] if config["mixing"]["translated"] > 0 else []) + (["oracle"] if oracle else [])


def plan_runs(config: dict[str, Any], oracle: bool) -> RunPlan:
    """The run plan of a validated config.

    Parameters
    ----------
    config : dict
        A validated config, defaults and experiments filled in.
    oracle : bool
        Whether oracle runs exist (``config["oracle"]`` and the target train split has labels;
        the caller decides, since that needs the dataset).

    Returns
    -------
    RunPlan
        Trees in the order (seed, experiment) with seeds in config order and the main tree
        before the experiments; runs in each tree in the order round 0, rounds, translated, oracle.
    """
    seeds, rounds = config["seeds"], round_count(config)
    pretraining = pretraining_run_names(config, oracle)
    start_name = "translated" if "translated" in pretraining and config["translation"]["selftrain_from"] == "translated" else "round0"
    runs: dict[str, Run] = {}
    trees: list[Tree] = []
    for seed in seeds:
        for experiment in [None, *config["experiments"]]:
            prefix = tree_prefix(seed, experiment, seeds[0])
            tree_config = run_config(config, experiment, seed)
            own = experiment is None or changes_pretraining(config["experiments"][experiment])
            home = prefix if own else tree_prefix(seed, None, seeds[0])
            folders = {name: home + name for name in pretraining}
            if own:
                for name in pretraining:
                    runs[home + name] = Run(name, seed, experiment, home + name, None, tree_config)
            previous = folders[start_name]
            for r in range(1, rounds + 1):
                folder = f"{prefix}round{r}"
                runs[folder] = Run(f"round{r}", seed, experiment, folder, previous, tree_config)
                folders[f"round{r}"] = previous = folder
            order = ["round0", *(f"round{r}" for r in range(1, rounds + 1)), *pretraining[1:]]
            trees.append(Tree(seed, experiment, prefix, {name: folders[name] for name in order}))
    return RunPlan(runs, trees)


def folder_pattern(folders: list[str]) -> str:
    """A regular expression matching exactly ``folders`` (matching nothing when empty)."""
    return "|".join(re.escape(folder) for folder in folders) if folders else "(?!)"


def experiments_like_main(plan: RunPlan) -> list[str]:
    """The experiments whose every run has its seed's main run's config (a protocol that forces
    the settings they change, or an entry that repeats the defaults): their rows repeat the main ones."""
    main = {tree.seed: tree for tree in plan.trees if tree.experiment is None}
    alike = []
    for tree in plan.trees:
        if tree.experiment is None or tree.experiment in alike:
            continue
        reference = main[tree.seed].folder_of
        if all(name in reference and plan.run(folder).config == plan.run(reference[name]).config
               for name, folder in tree.folder_of.items()):
            alike.append(tree.experiment)
    return alike
