"""Checks at workflow start of what the jobs need from the machines: CUDA for ``device: cuda`` when
the jobs run here (not when SLURM runs them), and every weight file an ``init`` names; all problems
in one message, before any job (selfpanoptic.preflight, selfpanoptic.workflow.setup_workflow)."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import reduce
from pathlib import Path

import pytest
import torch

from selfpanoptic import workflow as workflow_module
from selfpanoptic.config import overlay, protocol_config, validate_config
from selfpanoptic.config_sources import read_config_file
from selfpanoptic.errors import InputError
from selfpanoptic.models.pretrained import imagenet_file_names
from selfpanoptic.preflight import combined_error, preflight_problems, weight_inits
from selfpanoptic.runs import plan_runs
from selfpanoptic.workflow import SOURCE, jobs_host, setup_workflow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def problems(change: dict, jobs: str = "here", cuda: bool | None = None, torch_home: Path | None = None) -> list:
    """The preflight problems of the default config with ``change`` laid over it."""
    config = protocol_config(validate_config(change))[0]
    return preflight_problems(config, plan_runs(config, True), jobs=jobs, cuda=cuda, torch_home=torch_home)


def init(section: str, value: str, **model) -> dict:
    return {section: {"model": {"init": value, **model}}}


def text(found: list) -> str:
    return str(combined_error(found, SOURCE))


def test_missing_imagenet_file_of_a_resnet_names_the_key_and_the_path_looked_at(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # torch's own reading of the environment
    found = problems(init("semantic", "imagenet", backbone="resnet50"))
    assert len(found) == 1
    expected = tmp_path / "hub" / "checkpoints" / imagenet_file_names("resnet50")[0]
    assert found[0].text.startswith("semantic.model.init is imagenet (backbone resnet50): ")
    assert f"{expected}: ImageNet weights for resnet50 are not available offline" in found[0].text
    assert "download.pytorch.org" in found[0].fix and f"copy it to {expected}" in found[0].fix


def test_missing_imagenet_file_of_a_mit_encoder_names_every_path_looked_at(tmp_path):
    found = problems(init("instance", "imagenet", backbone="mit_b5"), torch_home=tmp_path)
    assert len(found) == 1 and found[0].text.startswith("instance.model.init is imagenet (backbone mit_b5): ")
    for name in imagenet_file_names("mit_b5"):  # mit_b5.pth, also pvt_v2_b5.pth
        assert str(tmp_path / "hub" / "checkpoints" / name) in found[0].text
    assert "NVlabs/SegFormer" in found[0].fix and "`none`" in found[0].fix


def test_a_present_file_passes_without_being_read(tmp_path, monkeypatch):
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    for backbone in ("resnet18", "mit_b0"):
        (folder / imagenet_file_names(backbone)[0]).write_bytes(b"")  # empty: only its name counts
    path = tmp_path / "encoder.pth"
    path.write_bytes(b"")

    def refuse(*args, **kwargs):
        raise AssertionError("a weight file was read")

    monkeypatch.setattr(torch, "load", refuse)
    change = overlay(init("semantic", "imagenet", backbone="resnet18"), init("instance", "imagenet", backbone="mit_b0"))
    assert problems(change, torch_home=tmp_path) == []
    assert problems(init("semantic", str(path)), torch_home=tmp_path) == []


def test_an_init_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    found = problems(init("semantic", str(missing)))
    assert len(found) == 1
    assert found[0].text.startswith(f"semantic.model.init is {missing} (backbone resnet18): {missing}: ")
    assert "does not exist" in found[0].text and "`imagenet`" in found[0].fix


def test_a_relative_init_path_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = problems(init("semantic", "weights/nope.pth"))
    assert len(found) == 1 and f"from {tmp_path})" in found[0].text


def test_an_experiments_backbone_is_named_by_its_key_and_each_file_once(tmp_path):
    change = {**init("semantic", "imagenet"), "seeds": [0, 1],
              "experiments": {"mit": {"semantic": {"model": {"backbone": "mit_b0", "head": "daformer"}}}}}
    config = validate_config(change)
    assert {(item.keys, item.backbone) for item in weight_inits(config, plan_runs(config, True))} == {
        (("semantic.model.init",), "resnet18"), (("experiments.mit.semantic.model.init",), "mit_b0")}
    message = text(problems(change, torch_home=tmp_path))
    assert message.count("semantic.model.init is imagenet (backbone resnet18)") == 1  # two seeds, one file
    assert "experiments.mit.semantic.model.init is imagenet (backbone mit_b0)" in message


def test_instance_init_does_not_count_without_instance_stages(tmp_path):
    assert problems({**init("instance", "imagenet"), "mixing": {"sources": ["gta"]}}, torch_home=tmp_path) == []


def test_cuda_without_cuda_is_refused_when_the_jobs_run_here():
    found = problems({"device": "cuda"}, jobs="here", cuda=False)
    assert len(found) == 1 and "device is cuda, but CUDA is not available on this machine" in found[0].text
    assert "device: auto" in found[0].fix and "profiles/slurm" in found[0].fix


@pytest.mark.parametrize(("device", "jobs", "cuda"), [
    ("cuda", "submitted", False),  # a SLURM submit host has no GPU: the jobs' nodes have
    ("cuda", "unknown", False),
    ("cuda", "here", True),
    ("cuda", "here", None),  # not asked
    ("auto", "here", False),  # falls back to the CPU, with a message in the job's log
    ("cpu", "here", False),
])
def test_cuda_is_not_refused_elsewhere(device, jobs, cuda):
    assert problems({"device": device}, jobs=jobs, cuda=cuda) == []


def test_weights_are_still_checked_when_the_jobs_are_submitted(tmp_path):
    found = problems({"device": "cuda", **init("semantic", "imagenet")}, jobs="submitted", cuda=False,
                     torch_home=tmp_path)
    assert len(found) == 1 and "semantic.model.init" in found[0].text


def test_several_problems_are_listed_in_one_message_each_with_its_fix(tmp_path):
    change = {"device": "cuda", **overlay(init("semantic", "imagenet", backbone="resnet101"),
                                          init("instance", str(tmp_path / "gone.pt")))}
    message = text(problems(change, cuda=False, torch_home=tmp_path))
    assert message.startswith(f"{SOURCE}: 3 problems found at workflow start, before any job ran")
    assert message.count("\n  - ") == 3 and message.count("\n    fix: ") == 3
    assert "device is cuda" in message and "semantic.model.init is imagenet (backbone resnet101)" in message
    assert f"instance.model.init is {tmp_path / 'gone.pt'}" in message


def test_the_default_config_passes():
    config = validate_config(read_config_file(ROOT / "config.yaml"))
    assert preflight_problems(config, plan_runs(config, True), jobs="here", cuda=False) == []


def test_an_unknown_jobs_value_is_a_programming_error():
    with pytest.raises(ValueError, match="jobs must be one of"):
        problems({}, jobs="slurm")


# --- at workflow start (setup_workflow) ---------------------------------------------------------------

def _layers(tmp_path, change):
    roots = {"datasets": {name: {"root": str(tmp_path / name)} for name in ("synthia", "gta", "target")},
             "results": str(tmp_path / "results")}
    layers = [roots, change]
    return reduce(overlay, layers, read_config_file(ROOT / "config.yaml")), layers


def test_setup_workflow_refuses_cuda_here_and_takes_it_when_submitted(tmp_path, monkeypatch):
    monkeypatch.setattr(workflow_module, "cuda_available", lambda: False)
    merged, layers = _layers(tmp_path, {"device": "cuda"})
    with pytest.raises(InputError, match="device is cuda, but CUDA is not available"):
        setup_workflow(merged, layers, jobs="here")
    assert setup_workflow(merged, layers, jobs="submitted").config["device"] == "cuda"
    notes = setup_workflow(merged, layers, jobs="unknown").notes
    assert any("device: cuda is not checked here" in note for note in notes)
    setup_workflow(merged, layers)  # no host: planning only


def test_missing_datasets_and_weights_are_one_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    merged, layers = _layers(tmp_path, {"toy": {"enabled": False}, **init("semantic", "imagenet")})
    with pytest.raises(InputError) as info:
        setup_workflow(merged, layers, jobs="submitted")
    message = str(info.value)
    assert "2 problems found at workflow start" in message
    assert f"target root (datasets.target.root): {tmp_path / 'target'}" in message
    assert "semantic.model.init is imagenet (backbone resnet18)" in message
    with pytest.raises(InputError) as info:  # datasets alone: their own message, as before
        setup_workflow(*_layers(tmp_path, {"toy": {"enabled": False}}), jobs="submitted")
    assert str(info.value).startswith("the datasets lack what the workflow will need")


def test_jobs_host_outside_snakemake():
    class JobProcess:
        is_main_process = False

    assert jobs_host(JobProcess()) is None  # a job's own Snakemake checks nothing again
    assert jobs_host(object()) == "unknown"  # not started from Snakemake's command line


# --- the workflow itself ------------------------------------------------------------------------------

def dry_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(BIN / "snakemake"), "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(tmp_path), "--configfile", str(ROOT / "config.yaml"), *args, "--config", "device=cuda"],
                          env=env, capture_output=True, text=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_workflow_with_device_cuda_on_a_cpu_machine_stops_before_any_job(tmp_path):
    result = dry_run(tmp_path, "--cores", "1")
    printed = result.stdout + result.stderr
    assert result.returncode != 0
    assert "device is cuda, but CUDA is not available on this machine" in printed and "fix: " in printed
    assert "Traceback" not in printed and "synthesize_toy_domains" not in printed  # no job was planned


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_workflow_with_device_cuda_submitted_to_slurm_is_not_refused(tmp_path):
    result = dry_run(tmp_path, "--executor", "slurm", "--jobs", "1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "synthesize_toy_domains" in result.stdout
