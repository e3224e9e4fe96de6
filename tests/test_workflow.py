"""The smoke workflow end to end: toy domains -> index -> mixing -> caches, then nothing to redo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from conftest import SMOKE_RUNS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRUCK_LABEL_ID, TRAIN_LABEL_ID = 27, 31

pytestmark = pytest.mark.workflow


SMOKE = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())


def snakemake(workdir: Path, *args: str, check: bool = True, configfiles: tuple[Path, ...] = (),
              **changes: dict) -> subprocess.CompletedProcess:
    """Run the workflow on the smoke config, with sections of it replaced by ``changes``, then
    ``configfiles`` given after it (as a user gives a protocol file)."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    config = workdir / "config-under-test.yaml"
    config.write_text(yaml.safe_dump({**SMOKE, **changes}))
    cmd = [
        str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(config), *map(str, configfiles), "--cores", "2", *args,
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("smoke")
    if SMOKE_RUNS:  # the SLURM tests ran this config already: the run below must find nothing to do
        shutil.copytree(SMOKE_RUNS[0], workdir, symlinks=True, dirs_exist_ok=True)
    snakemake(workdir)
    return workdir


def test_all_outputs_written(smoke):
    results = smoke / "results-smoke" / "data"
    for name in ("source", "target_train", "target_val"):
        assert (results / "cache" / f"{name}.h5").is_file()
    summary = smoke / "results-smoke" / "summary"
    for name in ("metrics.csv", "report.md", "metrics_by_round.png", "iou_per_class.png", "overlays_round0.png",
                 "overlays_round2.png", "overlays_oracle.png"):
        assert (summary / name).is_file(), name
    assert (smoke / "data/toy-smoke/cityscapes-like/gtFine/cityscapes_panoptic_val.json").is_file()
    assert not list(smoke.rglob("*.tmp-*")), "temporary files left behind"


def test_second_dry_run_has_nothing_to_do(smoke):
    result = snakemake(smoke, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_mixing_selects_exactly_the_gta_images_with_truck_and_train(smoke):
    gta_labels = sorted((smoke / "data/toy-smoke/gta-like/labels").glob("*.png"))
    with_both = set()
    for path in gta_labels:  # decoded here with Pillow alone, independently of the package
        ids = np.asarray(Image.open(path))
        if (ids == TRUCK_LABEL_ID).any() and (ids == TRAIN_LABEL_ID).any():
            with_both.add(path.stem)
    assert 0 < len(with_both) < len(gta_labels)
    mixed = pd.read_csv(smoke / "results-smoke/data/mixed_source.csv", dtype={"image_id": str})
    assert set(mixed.loc[mixed.dataset == "gta", "image_id"]) == with_both
    assert (mixed.dataset == "synthia").sum() == len(list((smoke / "data/toy-smoke/synthia-like/RGB").glob("*.png")))

    stats = pd.read_csv(smoke / "results-smoke/data/mixing_stats.csv").set_index("class")
    for cls in ("truck", "train"):
        assert stats.loc[cls, "synthia_pixels"] == 0
        assert stats.loc[cls, "mixed_pixels"] > 0
        assert stats.loc[cls, "mixed_images"] == len(with_both)


def test_caches_hold_working_resolution_and_provenance(smoke):
    with h5py.File(smoke / "results-smoke/data/cache/source.h5") as h5:
        assert h5["images"].shape[1:] == (32, 64, 3) and h5["labels"].chunks == (1, 32, 64)
        assert h5.attrs["stage"] == "dataset_cache" and h5.attrs["complete"]
        labels = h5["labels"][()]
        assert set(np.unique(labels)) <= set(range(19)) | {255}
        datasets = h5["datasets"].asstr()[()]
        gta_rows = labels[datasets == "gta"]
        assert all((row == 14).any() and (row == 16).any() for row in gta_rows)  # truck, train trainIds


def test_audit_command_explains_a_cache(smoke):
    result = subprocess.run(
        [str(BIN / "selfpanoptic"), "audit", str(smoke / "results-smoke/data/cache/target_val.h5")],
        capture_output=True, text=True, check=True,
    )
    assert "stage: dataset_cache" in result.stdout
    assert "label histogram (6 images" in result.stdout
    assert "instances (" in result.stdout


def planned_jobs(output: str) -> tuple[set[str], str]:
    """Rule names of a dry run's jobs, and its text."""
    rules = {line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith(("rule ", "localrule "))}
    return rules, output


def test_changing_mixing_reruns_its_descendants_only(smoke):
    rules, out = planned_jobs(snakemake(smoke, "-n", mixing={"require_all": ["truck", "train"], "min_pixels": 2}).stdout)
    assert "mix_sources" in rules and "pretrain_semantic" in rules and "summarize_metrics" in rules
    assert not rules & {"synthesize_toy_domains", "index_dataset"}
    assert_oracle_kept(out)
    assert "name=target_" not in out


def assert_oracle_kept(out: str) -> None:
    """The oracle trains on target labels and does not depend on the source: of its jobs only the
    label-free score reruns, which compares its prediction with the source's class shares."""
    oracle = {rule for rule, wildcards in job_wildcards(out) if "run=oracle" in wildcards}
    assert oracle <= {"score_label_free"}, oracle


def test_changing_evaluation_reruns_only_evaluation(smoke):
    rules, _ = planned_jobs(snakemake(smoke, "-n", evaluation={"instance_min_region_size": 7}).stdout)
    assert rules == {"score_instance", "summarize_metrics", "summarize_ablation", "report", "all"}


def test_changing_cache_compression_rebuilds_the_caches_and_what_follows(smoke):
    rules, _ = planned_jobs(snakemake(smoke, "-n", data={**SMOKE["data"], "compression": "gzip"}).stdout)
    assert "cache_dataset" in rules and "pretrain_semantic" in rules
    assert not rules & {"synthesize_toy_domains", "index_dataset", "mix_sources"}


def test_sharing_gpus_reruns_nothing(smoke):
    result = snakemake(smoke, "-n", resources={"jobs_per_gpu": 4})
    assert "Nothing to be done" in result.stdout + result.stderr


def planned_after_editing(smoke, relative: str) -> set[str]:
    """Rules a dry run plans after appending a comment to the package module ``relative``."""
    source = ROOT / "src" / "selfpanoptic" / relative
    original = source.read_text()
    try:
        source.write_text(original + "\n# an edit\n")
        rules, _ = planned_jobs(snakemake(smoke, "-n").stdout)
    finally:
        source.write_text(original)
    return rules


def test_editing_a_stage_module_reruns_that_stage(smoke):
    assert planned_after_editing(smoke, "report.py") == {"report", "all"}
    rules, _ = planned_jobs(snakemake(smoke, "-n").stdout)
    assert not rules


def test_editing_the_panoptic_codec_reruns_fusion_and_its_evaluation(smoke):
    # formats/panoptic_png.py is imported by the fuse and evaluate stages (and the report's overlays),
    # never listed by hand: the code hash follows each stage module's imports
    rules = planned_after_editing(smoke, "formats/panoptic_png.py")
    assert rules == {"fuse_panoptic", "score_panoptic", "summarize_metrics", "summarize_ablation", "report", "all"}


def test_editing_the_training_engine_reruns_every_training_rule_and_nothing_before(smoke):
    rules = planned_after_editing(smoke, "train/engine.py")
    assert {"pretrain_semantic", "pretrain_instance", "selftrain_semantic", "selftrain_instance"} <= rules
    assert not rules & {"synthesize_toy_domains", "index_dataset", "mix_sources", "cache_dataset"}


def test_editing_a_module_no_stage_imports_reruns_nothing(smoke):
    from selfpanoptic.cli import COMMANDS
    from selfpanoptic.provenance import PACKAGE_ROOT, import_closure

    used = {p for c in COMMANDS for p in import_closure(f"selfpanoptic.stages.{c.replace('-', '_')}")}
    assert PACKAGE_ROOT / "gpus.py" not in used  # the GPU allocator runs around a stage, not in it
    assert planned_after_editing(smoke, "gpus.py") == set()


def test_metrics_table_has_rows_for_every_round_and_the_oracle(smoke):
    table = pd.read_csv(smoke / "results-smoke/summary/metrics.csv", dtype={"run": str})
    assert list(table.columns) == ["run", "task", "metric", "class", "value"]
    assert set(table["run"]) == {"round0", "round1", "round2", "oracle"}
    for run in ("round0", "round1", "round2", "oracle"):
        rows = table[table["run"] == run]
        assert {("semantic", "mIoU", "all"), ("semantic", "mIoU", "all16"), ("semantic", "mIoU", "all13"),
                ("instance", "AP", "all"), ("instance", "AP50", "all"), ("panoptic", "PQ", "all"),
                ("panoptic", "PQ", "all16")} <= set(zip(rows.task, rows.metric, rows["class"]))
        assert (rows[rows.metric == "IoU"]["class"].nunique()) == 19
        assert {"confidence", "entropy", "flip_agreement", "class_distance"} <= set(rows[rows.task == "label_free"].metric)
    agreement = table[table.metric == "round_agreement"].set_index("run")["value"]
    assert agreement.isna()["round0"] and 0 <= agreement["round1"] <= 100  # round 0 has no previous round
    assert "## Label-free scores" in (smoke / "results-smoke/summary/report.md").read_text()


def test_rounds_auto_over_the_trained_rounds_only_chooses_one(smoke):
    # as many rounds as trained: nothing retrains; the choice and the report that names it are new
    selftrain = {**SMOKE["selftrain"], "rounds": "auto", "selection": {"max_rounds": SMOKE["selftrain"]["rounds"]}}
    rules, _ = planned_jobs(snakemake(smoke, "-n", selftrain=selftrain).stdout)
    assert rules == {"select_round", "report", "all"}


def job_wildcards(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards line or "") of every job of a dry run."""
    jobs, rule = [], None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            if rule is not None:
                jobs.append((rule, ""))
            rule = line.split()[1].rstrip(":")
        elif rule is not None and line.strip().startswith("wildcards:"):
            jobs.append((rule, line.strip()))
            rule = None
    if rule is not None:
        jobs.append((rule, ""))
    return jobs


def test_adding_a_round_reruns_nothing_of_the_earlier_rounds(smoke):
    changed = {**SMOKE["selftrain"], "rounds": 3}
    jobs = job_wildcards(snakemake(smoke, "-n", selftrain=changed).stdout)
    assert {"selftrain_semantic", "selftrain_instance", "pseudo_label_semantic"} <= {rule for rule, _ in jobs}
    for rule, wildcards in jobs:
        if rule in ("summarize_metrics", "summarize_ablation", "report", "all"):
            continue
        if wildcards == "wildcards: run=round2, split=train" and rule == "predict_instance":
            # new, not rerun: round 3 is guided by round 2's instances on the train images
            assert not (smoke / "results-smoke/round2/instance/pred_target_train.h5").exists()
            continue
        assert "run=round3" in wildcards, (rule, wildcards)


def test_changing_semantic_selftraining_reruns_the_rounds_never_pretraining(smoke):
    semantic = {**SMOKE["selftrain"]["semantic"], "momentum": 0.9}
    jobs = job_wildcards(snakemake(smoke, "-n", selftrain={**SMOKE["selftrain"], "semantic": semantic}).stdout)
    rules = {rule for rule, _ in jobs}
    assert {"pseudo_label_semantic", "selftrain_semantic", "selftrain_instance", "score_semantic"} <= rules
    assert not rules & {"pretrain_semantic", "pretrain_instance", "cache_dataset", "mix_sources"}
    assert all("round0" not in w and "oracle" not in w for _, w in jobs)


def test_co_learning_brings_its_target_images_and_its_figure_into_the_report(smoke):
    semantic = {**SMOKE["semantic"], "co_learning": {"enabled": True}}
    out = snakemake(smoke, "-n", "-p", semantic=semantic).stdout
    commands = [line.removeprefix("Shell command: ") for line in out.splitlines()]
    pretrain = [line for line in commands if line.startswith("selfpanoptic pretrain-semantic")]
    assert len(pretrain) == 2 and all("--target results-smoke/data/cache/target_train.h5" in p for p in pretrain)
    report = next(line for line in commands if line.startswith("selfpanoptic report"))
    assert "--generated round0 results-smoke/round0/semantic/co_learning.png" in report
    assert "--generated oracle" in report and "--generated round1" not in report


def test_changing_instance_selftraining_leaves_round1_semantic_alone(smoke):
    instance = {**SMOKE["selftrain"]["instance"], "consistency_weight": 0.2}
    jobs = job_wildcards(snakemake(smoke, "-n", selftrain={**SMOKE["selftrain"], "instance": instance}).stdout)
    rules = {rule for rule, _ in jobs}
    assert "selftrain_instance" in rules and "pseudo_label_instance" in rules
    assert not rules & {"pretrain_semantic", "pretrain_instance"}
    # round 2's semantic pseudo-labels are guided by round 1's instances, so round 2 reruns whole
    semantic = [w for rule, w in jobs if rule in ("selftrain_semantic", "pseudo_label_semantic")]
    assert semantic and all("run=round2" in w for w in semantic)


def test_pseudo_label_audit_grades_against_ground_truth(smoke):
    text = (smoke / "results-smoke/round1/pseudo/audit.txt").read_text()
    assert "stage: semantic_pseudo_labels" in text and "stage: instance_pseudo_labels" in text
    assert "precision of kept labels" in text and "graded against ground-truth instances" in text
    guided = (smoke / "results-smoke/round2/pseudo/audit.txt").read_text()
    assert "labels_before_guidance" in guided and "unguided kept %" in guided and "unguided prec %" in guided


def test_config_typo_stops_the_workflow_with_the_key_named(smoke):
    result = snakemake(smoke, "-n", check=False, mixing={"requre_all": ["truck"]})
    assert result.returncode != 0
    assert "mixing.requre_all" in result.stderr + result.stdout


def test_official_panoptic_evaluator_agrees_with_metrics_csv(smoke, tmp_path):
    gt = smoke / "data/toy-smoke/cityscapes-like/gtFine"
    pred = smoke / "results-smoke/round0/panoptic"
    results_file = tmp_path / "official.json"
    subprocess.run(
        [sys.executable, "-m", "cityscapesscripts.evaluation.evalPanopticSemanticLabeling",
         "--gt-json-file", str(gt / "cityscapes_panoptic_val.json"), "--gt-folder", str(gt / "cityscapes_panoptic_val"),
         "--prediction-json-file", str(pred / "panoptic.json"), "--prediction-folder", str(pred / "panoptic"),
         "--results_file", str(results_file)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    official = json.loads(results_file.read_text())
    table = pd.read_csv(smoke / "results-smoke/summary/metrics.csv", dtype={"run": str})
    ours = table[(table["run"] == "round0") & (table.task == "panoptic")].set_index(["metric", "class"])["value"]
    for group in ("All", "Things", "Stuff"):
        for metric in ("pq", "sq", "rq"):
            assert ours[metric.upper(), group.lower()] == pytest.approx(100 * official[group][metric], abs=1e-4)


@pytest.mark.parametrize("run", ["round0", "round1", "round2", "oracle"])
def test_official_evaluators_agree_with_metrics_csv_for_every_run(smoke, run, capsys):
    """cityscapesscripts' own pixel, instance and panoptic evaluators, run on the files the workflow
    exported (scripts/official_eval.py, as docs/evaluation.md shows), give every score of metrics.csv."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from official_eval import main as official_eval

    code = official_eval(["--target", str(smoke / "data/toy-smoke/cityscapes-like"),
                          "--run", str(smoke / f"results-smoke/{run}")])
    out = capsys.readouterr().out
    assert code == 0, out
    compared = [line for line in out.splitlines()[1:-1] if not line.endswith(" nan")]
    assert {line.split()[:2][0] for line in compared} >= {"IoU", "mIoU", "AP", "AP50", "PQ", "SQ", "RQ"}


def test_predictions_of_val_are_at_the_ground_truths_resolution(smoke):
    with h5py.File(smoke / "results-smoke/round1/semantic/pred_target_val.h5") as h5:
        assert h5["labels"].shape[1:] == (SMOKE["toy"]["height"], SMOKE["toy"]["width"])
    with h5py.File(smoke / "results-smoke/round1/semantic/pred_target_train.h5") as h5:
        assert h5["labels"].shape[1:] == (SMOKE["data"]["height"], SMOKE["data"]["width"])


def test_html_report_builds(smoke):
    result = snakemake(smoke, "--report", str(smoke / "report.html"))
    assert "Report created" in result.stdout + result.stderr
    html = (smoke / "report.html").read_text(errors="ignore")
    assert "metrics_by_round.png" in html and "overlays_round0.png" in html


def test_killed_snakemake_continues_with_the_readme_commands(smoke, tmp_path):
    """SIGKILL the whole Snakemake process group mid-training, then `snakemake --unlock` and a plain
    rerun, as the docs say: the run completes with the metrics of the uninterrupted one."""
    import signal
    import time

    workdir = tmp_path / "killed"
    # the smoke run up to its self-training rounds: the kill falls into round 1's training, and
    # the data and pretraining jobs need not run again
    shutil.copytree(smoke, workdir, symlinks=True)
    for name in ("round1", "round2", "summary"):
        shutil.rmtree(workdir / "results-smoke" / name)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    config = workdir / "config-under-test.yaml"
    config.write_text(yaml.safe_dump(SMOKE))
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    results = workdir / "results-smoke"
    deadline = time.time() + 600
    while not list((results / "round1").glob("**/train/metrics.csv")):
        assert proc.poll() is None and time.time() < deadline, "the run ended before any training started"
        time.sleep(0.01)
    time.sleep(0.2)  # a few steps into training
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (workdir / "results-smoke/summary/metrics.csv").exists()

    for extra in (["--unlock"], []):
        result = subprocess.run(cmd + extra, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{extra}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    resumed = pd.read_csv(workdir / "results-smoke/summary/metrics.csv", dtype={"run": str})
    reference = pd.read_csv(smoke / "results-smoke/summary/metrics.csv", dtype={"run": str})
    pd.testing.assert_frame_equal(resumed, reference)


# Source protocols (mixing.sources), run as a user would: the smoke config, then a protocol file.
# Kept small for CI: the smoke toy data reused, one round, no oracle, one instance group.
PROTOCOLS = ROOT / "configs" / "protocols"
GTA_NOTE = "mixing.sources is [gta]: GTA5 has no instance labels, so instance stages, guidance and PQ are skipped"


def protocol_run(smoke: Path, protocol: str, results: str | None = None, **changes) -> tuple[Path, subprocess.CompletedProcess]:
    """Run ``configs/protocols/<protocol>.yaml`` on the smoke toy data, into ``results`` (results-<protocol>/)."""
    results = results or f"results-{protocol}"
    result = snakemake(smoke, configfiles=(PROTOCOLS / f"{protocol}.yaml",), results=results,
                       oracle=False, selftrain={**SMOKE["selftrain"], "rounds": 1}, **changes)
    return smoke / results, result


@pytest.fixture(scope="module")
def gta_only(smoke) -> tuple[Path, subprocess.CompletedProcess]:
    return protocol_run(smoke, "gta")


@pytest.fixture(scope="module")
def synthia_only(smoke) -> tuple[Path, subprocess.CompletedProcess]:
    groups = {"all": ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]}
    # a space in the results folder: every path the workflow puts on a command line is quoted;
    # the transformer models (MiT-B0, DAFormer's head) through every stage
    return protocol_run(smoke, "synthia", results="results synthia",
                        semantic={**SMOKE["semantic"], "model": {"backbone": "mit_b0", "head": "daformer"}},
                        instance={**SMOKE["instance"], "groups": groups, "model": {"backbone": "mit_b0"}})


def test_gta_only_is_semantic_only_and_says_so_once(gta_only, smoke):
    results, result = gta_only
    assert (result.stdout + result.stderr).count(GTA_NOTE) == 1
    mixed = pd.read_csv(results / "data/mixed_source.csv")
    assert set(mixed.dataset) == {"gta"} and len(mixed) == len(list((smoke / "data/toy-smoke/gta-like/labels").glob("*.png")))
    assert not (results / "data/index/synthia_all.csv").exists()
    for run in ("round0", "round1"):
        assert (results / run / "semantic/pred_target_val.h5").is_file()
        assert not (results / run / "instance").exists() and not (results / run / "panoptic").exists()
        assert sorted(p.name for p in (results / run / "eval").iterdir()) == ["label_free.csv", "semantic.csv"]
    assert not list(results.rglob("*instance*.h5"))
    assert "stage: semantic_pseudo_labels" in (results / "round1/pseudo/audit.txt").read_text()

    table = pd.read_csv(results / "summary/metrics.csv", dtype={"run": str})
    assert set(table.task) == {"semantic", "label_free"} and set(table["run"]) == {"round0", "round1"}
    assert {("mIoU", "all"), ("mIoU", "all16")} <= set(zip(table.metric, table["class"]))
    assert not table.metric.isin(["PQ", "AP"]).any()
    page = (results / "summary/report.md").read_text()
    assert "| mIoU |" in page and "Semantic segmentation only" in page and "Panoptic segmentation" not in page
    assert (results / "summary/overlays_round1.png").is_file()


def test_synthia_only_is_panoptic(synthia_only):
    """On MiT-B0 models, into a results folder with a space."""
    results, result = synthia_only
    assert torch.load(results / "round1/semantic/model.pt", weights_only=True)["spec"]["backbone"] == "mit_b0"
    assert GTA_NOTE not in result.stdout + result.stderr
    assert set(pd.read_csv(results / "data/mixed_source.csv").dataset) == {"synthia"}
    assert not (results / "data/index/gta_all.csv").exists()
    assert "every image of synthia" in (results / "data/mixing_stats.md").read_text()
    table = pd.read_csv(results / "summary/metrics.csv", dtype={"run": str})
    for run in ("round0", "round1"):
        rows = set(zip(table[table["run"] == run].task, table[table["run"] == run].metric,
                       table[table["run"] == run]["class"]))
        assert {("semantic", "mIoU", "all16"), ("panoptic", "PQ", "all16"), ("instance", "AP", "all")} <= rows
    assert (results / "round1/panoptic/panoptic.json").is_file() and (results / "summary/report.md").is_file()


def test_changing_the_sources_reruns_mixing_and_what_follows_only(smoke):
    out = snakemake(smoke, "-n", configfiles=(PROTOCOLS / "gta.yaml",)).stdout
    rules, _ = planned_jobs(out)
    assert {"mix_sources", "pretrain_semantic", "selftrain_semantic", "report"} <= rules
    assert not rules & {"synthesize_toy_domains", "index_dataset", "pretrain_instance", "predict_instance",
                        "fuse_panoptic", "score_panoptic"}
    assert_oracle_kept(out)
    assert "name=target_" not in out


def test_unlabelled_image_folder_target_runs_through_self_training(smoke, tmp_path):
    """A folder of images, no labels anywhere: self-training and prediction run; the oracle, grading
    and evaluation are left out with a message. Reuses the smoke run's toy images, one round."""
    workdir = tmp_path / "unlabelled"
    workdir.mkdir()
    toy = smoke / "data/toy-smoke"
    result = snakemake(
        workdir, toy={**SMOKE["toy"], "enabled": False},
        datasets={"synthia": {"root": str(toy / "synthia-like")}, "gta": {"root": str(toy / "gta-like")},
                  "target": {"format": "images", "root": str(toy / "cityscapes-like"),
                             "train_glob": "leftImg8bit/train/*/*.png", "val_glob": "leftImg8bit/val/*/*.png"}},
        selftrain={**SMOKE["selftrain"], "rounds": 1},
    )
    log = result.stdout + result.stderr
    assert "the target train split has no labels: no oracle run" in log
    assert "the target val split has no labels" in log
    results = workdir / "results-smoke"
    assert (results / "round1/semantic/model.pt").is_file()
    for group in SMOKE["instance"]["groups"]:
        assert (results / f"round1/instance/{group}/model.pt").is_file()
    for run in ("round0", "round1"):
        assert (results / f"{run}/semantic/pred_target_val.h5").is_file()
        assert (results / f"{run}/instance/pred_target_val.h5").is_file()
    with h5py.File(results / "data/cache/target_train.h5") as h5:
        assert not h5.attrs["labelled"] and (h5["labels"][()] == 255).all()
    audit = (results / "round1/pseudo/audit.txt").read_text()
    assert "stage: semantic_pseudo_labels" in audit and "not graded:" in audit and "prec %" not in audit
    assert not (results / "oracle").exists() and not (results / "summary").exists()


# Label-to-image translation (mixing.translated > 0), on the smoke run: only the translation
# stages and the run `translated` are added; nothing the smoke run made is redone. Last in the
# module: afterwards the smoke folder's report and summary are those of the translated config.
TRANSLATION = {"train": {"steps": 3, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 2},
               "generator": {"channels": 8, "upsamplings": 2}, "discriminator": {"channels": 8, "layers": 2},
               "samples": 2}


@pytest.fixture(scope="module")
def translated(smoke) -> tuple[str, subprocess.CompletedProcess]:
    changes = {"mixing": {"translated": 0.5}, "translation": TRANSLATION}
    plan = snakemake(smoke, "-n", **changes).stdout
    return plan, snakemake(smoke, **changes)


def test_translation_adds_its_stages_and_the_translated_run_only(translated):
    plan, _ = translated
    rules, out = planned_jobs(plan)
    assert {"train_translator", "translate_source", "label_fidelity", "cache_dataset"} <= rules
    assert not rules & {"synthesize_toy_domains", "index_dataset", "mix_sources", "pseudo_label_semantic",
                        "selftrain_semantic", "selftrain_instance"}
    assert "run=round0" not in out and "run=oracle" not in out
    assert "run=translated" in out and "name=translated_source" in out


def test_translated_run_is_scored_and_reported(translated, smoke):
    results = smoke / "results-smoke"
    metrics = pd.read_csv(results / "summary/metrics.csv", dtype={"run": str})
    assert list(dict.fromkeys(metrics["run"])) == ["round0", "round1", "round2", "translated", "oracle"]
    assert {"semantic", "instance", "panoptic"} <= set(metrics.loc[metrics["run"] == "translated", "task"])
    report = (results / "summary/report.md").read_text()
    assert "| metric | round 0 | round 1 | round 2 | translated | oracle |" in report
    assert "## Label-to-image translation" in report
    assert "../translation/samples.png" in report
    layout = results / "data/translated"
    assert (layout / "provenance.json").is_file() and list((layout / "synthia/RGB").glob("*.png"))
    assert list((layout / "gta/images").glob("*.png")) and list((layout / "gta/labels").glob("*.png"))
    fidelity = pd.read_csv(results / "translation/fidelity.csv")
    assert fidelity["class"].iloc[-1] == "mean"


def test_self_training_from_the_translated_run_reruns_the_rounds_from_it(translated, smoke):
    changes = {"mixing": {"translated": 0.5}, "translation": {**TRANSLATION, "selftrain_from": "translated"}}
    rules, out = planned_jobs(snakemake(smoke, "-n", **changes).stdout)
    assert {"pseudo_label_semantic", "selftrain_semantic", "selftrain_instance"} <= rules
    assert not rules & {"train_translator", "translate_source", "label_fidelity", "pretrain_semantic"}
    assert "results-smoke/translated/semantic/model.pt" in out


# an experiment without guidance whose pseudo instances pass the objectness classifier
EXPERIMENTS = {"objectness": {"selftrain": {"guidance": {"from_round": 0},
                                            "instance": {"objectness": {"enabled": True, "source_images": 4}}}}}


def test_an_experiment_adds_its_own_rounds_only(smoke):
    jobs = job_wildcards(snakemake(smoke, "-n", experiments=EXPERIMENTS).stdout)
    rules = {rule for rule, _ in jobs}
    assert {"pseudo_label_semantic", "selftrain_semantic", "selftrain_instance", "summarize_ablation"} <= rules
    # (summarize_metrics may be planned by what earlier tests left, e.g. a translated run's rows)
    assert not rules & {"pretrain_semantic", "pretrain_instance", "cache_dataset", "mix_sources"}
    for rule, wildcards in jobs:
        if wildcards:
            assert "experiments/objectness/" in wildcards, (rule, wildcards)


def test_an_experiment_of_pretraining_plans_its_own_round0_and_oracle_only(smoke):
    """A change of source pretraining (semantic) retrains round 0 and the oracle of the experiment
    and self-trains from them; nothing of the main runs or the data reruns."""
    experiments = {"slow": {"semantic": {"train": {"lr": 0.0005}}}}
    jobs = job_wildcards(snakemake(smoke, "-n", experiments=experiments).stdout)
    rules = {rule for rule, _ in jobs}
    assert {"pretrain_semantic", "pretrain_instance", "selftrain_semantic", "summarize_ablation"} <= rules
    assert not rules & {"cache_dataset", "mix_sources", "index_dataset"}
    runs = {dict(part.split("=") for part in wildcards.removeprefix("wildcards: ").split(", ")).get("run")
            for _, wildcards in jobs if wildcards}
    assert {"experiments/slow/round0", "experiments/slow/oracle", "experiments/slow/round2"} <= runs
    assert all(run is None or run.startswith("experiments/slow/") for run in runs), runs


@pytest.fixture(scope="module")
def repeated(smoke) -> Path:
    snakemake(smoke, experiments=EXPERIMENTS, seeds=[0, 1])
    return smoke / "results-smoke"


def test_seeds_and_experiments_fill_the_ablation_table_and_the_report(repeated, smoke):
    table = pd.read_csv(repeated / "summary/ablation.csv", dtype={"run": str, "experiment": str})
    assert list(dict.fromkeys(table["experiment"])) == ["main", "objectness"]
    for experiment in ("main", "objectness"):
        rows = table[(table.experiment == experiment) & (table.task == "semantic") & (table.metric == "mIoU")
                     & (table["class"] == "all")]
        assert sorted(zip(rows.seed, rows["run"])) == [(s, r) for s in (0, 1) for r in ("oracle", "round0", "round1", "round2")]
    shared = table[(table["run"] == "round0")].pivot_table(index=["seed", "task", "metric", "class"], columns="experiment",
                                                         values="value")
    pd.testing.assert_series_equal(shared["main"], shared["objectness"], check_names=False)  # one round 0 per seed
    report = (repeated / "summary/report.md").read_text()
    assert "## Ablations: experiments" in report and "| objectness | 2 |" in report
    assert (repeated / "summary/ablation_by_round.png").is_file()
    # seed 1 is its own training: other weights, so other predictions; its oracle learns the
    # target labels, not the source as its round 0 does
    def confidence(run):
        with h5py.File(repeated / run / "semantic/pred_target_val.h5") as h5:
            return h5["confidence"][()]

    assert not np.array_equal(confidence("round0"), confidence("seed1/round0"))
    assert not np.array_equal(confidence("seed1/oracle"), confidence("seed1/round0"))
    assert (repeated / "seed1/experiments/objectness/round2/pseudo/audit.txt").is_file()
    log = (repeated / "logs/selftrain_instance/experiments/objectness/round1_vehicles.log").read_text()
    assert "objectness classifier of 4 classes" in log
    metrics = pd.read_csv(repeated / "summary/metrics.csv", dtype={"run": str})
    assert set(metrics["run"]) == {"round0", "round1", "round2", "oracle"}  # the main table stays the first seed's main rounds
    again = snakemake(smoke, "-n", experiments=EXPERIMENTS, seeds=[0, 1])
    assert "Nothing to be done" in again.stdout + again.stderr


GAN = {"enabled": True, "train": {"steps": 3, "batch_size": 2, "checkpoint_every": 2},
       "generator": {"levels": 3, "channels": 4, "max_channels": 8, "style_dim": 8, "mapping_layers": 1},
       "discriminator": {"channels": 8, "layers": 2, "scales": 1},
       "encoder": {"stages": 3, "channels": 4, "train": {"steps": 2, "batch_size": 2, "checkpoint_every": 2}},
       "inversion": {"steps": 2, "batch_size": 4}, "samples": 4, "grid": 2, "source_share": 0.5}


@pytest.fixture(scope="module")
def semantic_gan(smoke) -> tuple[str, Path]:
    snakemake(smoke, seeds=[0, 1])  # the second seed's runs (made already when the seeds test ran first)
    plan = snakemake(smoke, "-n", seeds=[0, 1], semantic_gan=GAN).stdout
    snakemake(smoke, seeds=[0, 1], semantic_gan=GAN)
    return plan, smoke / "results-smoke"


def test_semantic_gan_adds_its_stages_and_three_runs_per_seed(semantic_gan, smoke):
    plan, results = semantic_gan
    rules, out = planned_jobs(plan)
    assert {"train_semantic_gan", "train_gan_encoder", "predict_semantic_gan", "sample_semantic_gan",
            "index_gan_samples", "cache_gan_samples"} <= rules
    assert not rules & {"pretrain_instance", "selftrain_semantic"}
    # of the existing runs' training and prediction, only the gan_samples run's semantic model is new
    trained = {(rule, wildcards) for rule, wildcards in job_wildcards(out) if rule in ("pretrain_semantic", "predict_semantic")}
    assert trained and all("gan_samples" in wildcards for _, wildcards in trained), trained
    assert "gan=seed1/semantic_gan" in out and "run=seed1/gan_inversion" in out and "run=seed1/gan_samples" in out
    table = pd.read_csv(results / "summary/ablation.csv", dtype={"run": str, "experiment": str})
    rows = table[(table.task == "semantic") & (table.metric == "mIoU") & (table["class"] == "all")
                 & table["run"].str.startswith("gan_")]
    assert sorted(zip(rows.seed, rows["run"])) == [(s, r) for s in (0, 1)
                                                   for r in ("gan_encoder", "gan_inversion", "gan_samples")]
    assert {"semantic", "instance", "panoptic"} <= set(table.loc[table["run"] == "gan_inversion", "task"])
    assert {"semantic", "instance", "panoptic"} <= set(table.loc[table["run"] == "gan_samples", "task"])
    # gan_samples: round 0's semantic training (same seed and settings) with sampled draws; no instance models
    weights = [torch.load(results / run / "semantic/model.pt", map_location="cpu", weights_only=True)["state_dict"]
               for run in ("round0", "gan_samples")]
    assert weights[0].keys() == weights[1].keys()
    assert not all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert not list(results.glob("gan_samples/instance/*/model.pt"))
    report = (results / "summary/report.md").read_text()
    assert "## SemanticGAN" in report and "| gan_inversion |" in report and "| gan_samples |" in report
    for link in ("../semantic_gan/samples.png", "../gan_inversion/semantic/readout_val.png"):
        assert f"]({link})" in report and (results / "summary" / link).is_file()
    samples = results / "semantic_gan/samples"
    assert len(list((samples / "images").glob("*.png"))) == len(list((samples / "labels").glob("*.png"))) == 4
    fidelity = pd.read_csv(results / "semantic_gan/fidelity.csv")
    assert fidelity["class"].iloc[-1] == "mean"
    # the samples are a GTA5 dataset the index stage reads
    index = subprocess.run([str(BIN / "selfpanoptic"), "index", "--name", "gta", "--format", "gta5", "--root",
                            str(samples), "--out", str(smoke / "samples_index.csv"), "--quiet"], capture_output=True, text=True)
    assert index.returncode == 0, index.stderr
    assert len(pd.read_csv(smoke / "samples_index.csv")) == 4


def test_changing_the_inversion_reruns_only_the_inversion_readout(semantic_gan, smoke):
    changed = {**GAN, "inversion": {"steps": 3, "batch_size": 4}}
    rules, out = planned_jobs(snakemake(smoke, "-n", seeds=[0, 1], semantic_gan=changed).stdout)
    assert "predict_semantic_gan" in rules
    assert not rules & {"train_semantic_gan", "train_gan_encoder", "sample_semantic_gan"}
    assert "run=gan_inversion" in out and "run=gan_encoder" not in out
