"""The run plan on small configs: which runs exist, where they live, what they start from."""

from __future__ import annotations

import pytest

from selfpanoptic.config import validate_config
from selfpanoptic.runs import folder_pattern, plan_runs, run_config


def plan(oracle=True, **config):
    return plan_runs(validate_config(config), oracle)


def test_default_plan_is_round0_the_rounds_and_the_oracle():
    p = plan()
    assert list(p.runs) == ["round0", "oracle", "round1", "round2"]
    assert p.main.folder_of == {"round0": "round0", "round1": "round1", "round2": "round2", "oracle": "oracle"}
    assert p.run("round1").start == "round0" and p.run("round2").start == "round1"
    assert p.run("round0").start is None and p.run("round0").pretraining and not p.run("round2").pretraining
    assert [p.run(f).round for f in p.runs] == [0, None, 1, 2]
    assert p.folders(pretraining=True) == ["round0", "oracle"]
    with pytest.raises(KeyError, match="no run 'round3'"):
        p.run("round3")


def test_no_oracle_without_train_labels_and_rounds_follow_selftrain_rounds():
    p = plan(oracle=False, selftrain={"rounds": 3})
    assert list(p.main.folder_of) == ["round0", "round1", "round2", "round3"]


def test_selftrain_experiment_shares_round0_and_oracle_of_its_seed():
    p = plan(seeds=[0, 1], experiments={"no_guidance": {"selftrain": {"guidance": {"from_round": 0}}}})
    tree = next(t for t in p.trees if t.seed == 1 and t.experiment == "no_guidance")
    assert tree.prefix == "seed1/experiments/no_guidance/"
    assert tree.folder_of == {"round0": "seed1/round0", "round1": "seed1/experiments/no_guidance/round1",
                         "round2": "seed1/experiments/no_guidance/round2", "oracle": "seed1/oracle"}
    assert p.run("seed1/experiments/no_guidance/round1").start == "seed1/round0"
    assert not any(f.startswith("experiments/") or "/experiments/" in f for f in p.folders(pretraining=True))
    assert [t.label for t in p.trees] == ["main", "no_guidance", "main", "no_guidance"]
    # the experiment's rounds run with its section, the main rounds without it
    assert p.run("experiments/no_guidance/round2").config["selftrain"]["guidance"]["from_round"] == 0
    assert p.run("round2").config["selftrain"]["guidance"]["from_round"] == 2


def test_pretraining_experiment_plans_its_own_round0_and_oracle():
    p = plan(experiments={"co": {"semantic": {"co_learning": {"enabled": True}}}})
    tree = p.trees[1]
    assert tree.folder_of == {name: f"experiments/co/{name}" for name in ("round0", "round1", "round2", "oracle")}
    assert p.run("experiments/co/round1").start == "experiments/co/round0"
    assert p.run("experiments/co/round0").config["semantic"]["co_learning"]["enabled"]
    assert not p.run("round0").config["semantic"]["co_learning"]["enabled"]
    # the main runs are untouched by the experiment
    assert p.main.folder_of["round0"] == "round0"


def test_seeds_offset_every_training_seed_of_their_runs():
    p = plan(seeds=[0, 3], semantic={"train": {"seed": 5}})
    assert p.run("round0").config["semantic"]["train"]["seed"] == 5
    assert p.run("seed3/round0").config["semantic"]["train"]["seed"] == 8
    assert p.run("seed3/round1").config["selftrain"]["instance"]["train"]["seed"] == 3
    assert p.run("seed3/round1").start == "seed3/round0"


def test_translated_run_and_self_training_from_it():
    p = plan(mixing={"translated": 0.5}, translation={"selftrain_from": "translated", "labels_from": "round0"})
    assert p.main.folder_of["translated"] == "translated"
    assert p.run("round1").start == "translated"
    assert list(p.main.folder_of) == ["round0", "round1", "round2", "translated", "oracle"]


def test_protocol_forced_settings_reach_every_experiment():
    p = plan(mixing={"sources": ["gta"]}, experiments={"x": {"selftrain": {"guidance": {"from_round": 1}}}})
    assert p.run("experiments/x/round1").config["selftrain"]["guidance"]["from_round"] == 0


def test_run_config_lays_the_experiment_over_the_config_without_changing_it():
    config = validate_config({"experiments": {"x": {"inference": {"flip": True}}}})
    changed = run_config(config, "x", 2)
    assert changed["inference"]["flip"] and not config["inference"]["flip"]
    assert changed["semantic"]["train"]["seed"] == config["semantic"]["train"]["seed"] + 2


def test_folder_pattern_matches_exactly_the_folders():
    import re

    pattern = folder_pattern(["round0", "seed1/experiments/a_b/round2"])
    assert re.fullmatch(pattern, "seed1/experiments/a_b/round2")
    assert not re.fullmatch(pattern, "round01") and not re.fullmatch(pattern, "seed1/round0")
    assert not re.fullmatch(folder_pattern([]), "")
