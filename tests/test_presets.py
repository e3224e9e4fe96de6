"""Presets with experiments plan what they should: their own round 0 only where an experiment
changes pretraining, nothing shared that must differ (dry runs from the repository root)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def planned_runs(*args: str, results: Path) -> dict[str, set[str]]:
    """Rule -> the ``run`` wildcard of each of its jobs in a dry run of the whole workflow."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(["snakemake", "-n", "--forceall", "--nolock", *args, "--config", f"results={results}"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    jobs, rule = defaultdict(set), None
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif rule and line.strip().startswith("wildcards:"):
            fields = dict(part.split("=", 1) for part in line.strip().removeprefix("wildcards: ").split(", "))
            if "run" in fields:
                jobs[rule].add(fields["run"])
    return jobs


def test_related_work_preset_pretrains_only_where_an_experiment_changes_pretraining(tmp_path):
    jobs = planned_runs("--configfile", "configs/related-work.yaml", results=tmp_path / "results")
    co_learning = ["co_learning_rgb_l1", "co_learning_rgb_l1_rebalanced", "co_learning_rgb_gan", "co_learning_depth_l1"]
    trees = ["", "seed1/", "seed2/"]
    # co-learning changes source pretraining: each of its experiments trains its own round 0,
    # with the co-learning figure, and self-trains from it; the main runs do not co-learn
    assert jobs["pretrain_semantic_co_learning"] == {f"{t}experiments/{e}/round0" for t in trees for e in co_learning}
    assert jobs["pretrain_semantic"] == {f"{t}round0" for t in trees}  # oracle: false in the preset
    assert jobs["selftrain_semantic_co_learning"] == {f"{t}experiments/{e}/round{r}" for t in trees
                                                      for e in co_learning for r in (1, 2)}
    # self-correction changes self-training only: its rounds, none of its own round 0
    assert {f"{t}experiments/self_correction/round{r}" for t in trees for r in (1, 2)} <= jobs["selftrain_semantic"]
    assert not any("self_correction" in run for rule in ("pretrain_semantic", "pretrain_instance") for run in jobs[rule])


def test_method_ablation_preset_shares_round0_and_the_oracle(tmp_path):
    jobs = planned_runs("--configfile", "configs/method-ablation.yaml", results=tmp_path / "results")
    assert jobs["pretrain_semantic"] == {"round0", "oracle", "seed1/round0", "seed1/oracle"}
    assert len(jobs["selftrain_semantic"]) == 2 * 2 * (1 + 4)  # seeds x rounds x (main + 4 experiments)


def test_mixing_ablation_preset_trains_only_rounds_for_its_experiments(tmp_path):
    jobs = planned_runs("--configfile", "configs/mixing-ablation.yaml", results=tmp_path / "results")
    assert jobs["pretrain_semantic"] == {f"{t}{r}" for t in ("", "seed1/", "seed2/") for r in ("round0", "oracle")}
    assert len(jobs["selftrain_semantic"]) == 3 * 2 * (1 + 3)  # seeds x rounds x (main + 3 experiments)
    # every run, round 0 and the oracle included, gets its label-free scores
    assert len(jobs["score_label_free"]) == 3 * 2 + 3 * 2 * (1 + 3)


def test_co_learning_in_the_main_runs_and_off_in_an_experiment(tmp_path):
    """Co-learning figures are outputs of the co-learning rules alone, whichever runs co-learn."""
    config = tmp_path / "co-learning.yaml"
    config.write_text("semantic: {co_learning: {enabled: true}}\n"
                      "selftrain: {semantic: {co_learning: {enabled: true}}}\n"
                      "experiments:\n  plain: {semantic: {co_learning: {enabled: false}},"
                      " selftrain: {semantic: {co_learning: {enabled: false}}}}\n")
    jobs = planned_runs("--configfile", str(config), results=tmp_path / "results")
    assert jobs["pretrain_semantic_co_learning"] == {"round0", "oracle"}
    assert jobs["selftrain_semantic_co_learning"] == {"round1", "round2"}
    assert jobs["pretrain_semantic"] == {"experiments/plain/round0", "experiments/plain/oracle"}
    assert jobs["selftrain_semantic"] == {"experiments/plain/round1", "experiments/plain/round2"}


def test_every_preset_is_a_valid_config():
    from selfpanoptic.config import load_config

    presets = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len(presets) >= 14
    for path in presets:
        load_config(path)


def test_encoders_preset_gives_the_transformer_its_own_pretraining(tmp_path):
    jobs = planned_runs("--configfile", "configs/encoders.yaml", results=tmp_path / "results")
    for seed in ("", "seed1/", "seed2/"):
        assert {f"{seed}round0", f"{seed}experiments/mit_b0/round0"} <= jobs["pretrain_semantic"]
        assert {f"{seed}round2", f"{seed}experiments/mit_b0/round2"} <= jobs["selftrain_semantic"]


def test_daformer_preset_plans_up_to_the_dataset_check():
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(["snakemake", "-n", "--nolock", "--configfile", "configs/daformer-synthia-cityscapes.yaml"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    printed = result.stdout + result.stderr
    assert result.returncode != 0
    assert "synthia root (datasets.synthia.root): /data/synthia/RAND_CITYSCAPES" in printed
    assert "target root (datasets.target.root): /data/cityscapes" in printed


def test_rehearsal_preset_plans_every_stage_of_the_real_preset_at_the_real_sizes(tmp_path):
    """configs/rehearsal.yaml: the real preset's models, batches and working resolution on toy domains
    at the real datasets' sizes, a few steps, one round, on the CPU; a dry run plans every stage."""
    from selfpanoptic.config import load_config

    rehearsal, real = load_config(ROOT / "configs/rehearsal.yaml"), load_config(ROOT / "configs/synthia-gta-cityscapes.yaml")
    toy = rehearsal["toy"]
    assert toy["enabled"] and (toy["synthia_size"], toy["gta_size"], toy["target_size"]) == (
        [760, 1280], [1052, 1914], [1024, 2048])
    assert toy["gta_size_jitter"] > 0
    assert rehearsal["data"] == real["data"] and rehearsal["mixing"] == real["mixing"]
    assert rehearsal["device"] == "cpu" and rehearsal["selftrain"]["rounds"] == 1
    for task in ("semantic", "instance"):
        assert {**rehearsal[task]["model"], "init": "imagenet"} == real[task]["model"]
        same = {key: value for key, value in rehearsal[task]["train"].items() if key != "steps"}
        assert same == {key: value for key, value in real[task]["train"].items() if key != "steps"}
        assert rehearsal[task]["train"]["steps"] <= 4
        assert {k: v for k, v in rehearsal["selftrain"][task].items() if k != "train"} == {
            k: v for k, v in real["selftrain"][task].items() if k != "train"}
        assert rehearsal["selftrain"][task]["train"]["steps"] <= 4
    assert rehearsal["inference"] == real["inference"] and rehearsal["evaluation"] == real["evaluation"]

    jobs = planned_runs("--configfile", "configs/rehearsal.yaml", results=tmp_path / "results")
    assert jobs["pretrain_semantic"] == jobs["pretrain_instance"] == {"round0", "oracle"}
    assert jobs["selftrain_semantic"] == jobs["selftrain_instance"] == {"round1"}
    assert jobs["score_panoptic"] == {"round0", "round1", "oracle"}
