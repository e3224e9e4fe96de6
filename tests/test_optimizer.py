"""The optimiser and the learning-rate schedule: AdamW, no decay on norms and biases, linear warm-up.

The numbers are checked by hand (in the comments), and the defaults against a copy of the code
from before these keys existed: every shipped config must train exactly as it did.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from torch import nn

from selfpanoptic.config import load_config, overlay, validate_config
from selfpanoptic.errors import InputError
from selfpanoptic.models import build_instance_model, build_semantic_model
from selfpanoptic.settings import TrainSettings
from selfpanoptic.train.optim import build_optimizer, learning_rate_factor, no_decay_parameter_ids

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRAIN = validate_config({})["semantic"]["train"]


def settings(**changes: Any) -> TrainSettings:
    return TrainSettings.from_config(DEFAULT_TRAIN | changes)


class Tiny(nn.Module):
    """Conv + BatchNorm encoder and a Linear head, as the segmentation models split them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())


class TinyTransformer(nn.Module):
    """What a ViT keeps out of weight decay besides norms and biases: its position embedding and tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 8))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.reg_token = nn.Parameter(torch.zeros(1, 2, 8))
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.group_norm = nn.GroupNorm(2, 8)
        self.scale = nn.Parameter(torch.ones(8))  # a layer-scale vector: 1-d


# --- learning-rate factor ---------------------------------------------------------------------------

def test_linear_warm_up_rises_from_the_ratio_to_one():
    # constant schedule, 10 warm-up steps from 1e-6: factor = 1 - (1 - step / 10) * (1 - 1e-6)
    assert learning_rate_factor("constant", 0, 100, warmup_steps=10) == pytest.approx(1e-6, rel=1e-9)
    assert learning_rate_factor("constant", 5, 100, warmup_steps=10) == pytest.approx(0.5 + 0.5e-6, rel=1e-12)
    assert learning_rate_factor("constant", 10, 100, warmup_steps=10) == 1.0
    assert learning_rate_factor("constant", 50, 100, warmup_steps=10) == 1.0
    # ratio 0.1: 0.1 at step 0, 0.55 half-way
    assert learning_rate_factor("constant", 0, 100, warmup_steps=10, warmup_ratio=0.1) == pytest.approx(0.1)
    assert learning_rate_factor("constant", 5, 100, warmup_steps=10, warmup_ratio=0.1) == pytest.approx(0.55)


def test_poly_with_warm_up_multiplies_the_whole_runs_poly_as_mmcv():
    # power 1, 100 steps, 10 warm-up steps from 0: poly(step) = 1 - step / 100, the warm-up multiplies it
    def factor(step: int) -> float:
        return learning_rate_factor("poly", step, 100, power=1.0, warmup_steps=10, warmup_ratio=0.0)

    assert factor(0) == 0.0
    assert factor(5) == pytest.approx(0.95 * 0.5)   # 0.475
    assert factor(10) == pytest.approx(0.9)         # the poly of step 10 of 100, not 1: no restart
    assert factor(55) == pytest.approx(0.45)
    assert factor(100) == 0.0
    # DAFormer: 1500 of 40000 steps; at the end of the warm-up the rate is 1 - 1500 / 40000 of lr
    daformer = learning_rate_factor("poly", 1500, 40000, power=1.0, warmup_steps=1500)
    assert daformer == pytest.approx(0.9625)


def test_cosine_with_warm_up():
    # 0.5 * (1 + cos(pi * 5 / 20)) * 0.5 half-way through 10 warm-up steps
    expected = 0.5 * (1 + math.cos(math.pi * 0.25)) * 0.5
    assert learning_rate_factor("cosine", 5, 20, warmup_steps=10, warmup_ratio=0.0) == pytest.approx(expected)


def _legacy_factor(schedule: str, step: int, total: int, power: float) -> float:
    """learning_rate_factor before warm-up existed."""
    progress = min(step / max(total, 1), 1.0)
    if schedule == "poly":
        return (1.0 - progress) ** power
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


@pytest.mark.parametrize("schedule", ["poly", "cosine", "constant"])
def test_without_warm_up_the_factor_is_bit_identical_to_before(schedule):
    for total in (1, 7, 250):
        for step in range(total + 1):
            assert learning_rate_factor(schedule, step, total, 0.9) == _legacy_factor(schedule, step, total, 0.9)


def test_warm_up_longer_than_the_run_is_refused_naming_the_key():
    with pytest.raises(InputError) as info:
        TrainSettings.from_config(DEFAULT_TRAIN | {"steps": 100, "warmup_steps": 101}, "semantic.train")
    assert "semantic.train.warmup_steps 101 is above semantic.train.steps 100" in str(info.value)
    assert "fix: lower semantic.train.warmup_steps" in str(info.value)
    assert settings(steps=100, warmup_steps=100).warmup_steps == 100  # the whole run may warm up


def test_schema_bounds_and_defaults_of_the_new_keys():
    assert (DEFAULT_TRAIN["warmup_steps"], DEFAULT_TRAIN["warmup_ratio"]) == (0, 1e-6)
    assert DEFAULT_TRAIN["decay_norms_and_biases"] is True
    for bad in ({"warmup_steps": -1}, {"warmup_ratio": 1.5}, {"optimizer": "lamb"}):
        with pytest.raises(InputError):
            validate_config({"semantic": {"train": bad}})
    assert validate_config({"instance": {"train": {"optimizer": "adamw"}}})["instance"]["train"]["optimizer"] == "adamw"


# --- parameter groups --------------------------------------------------------------------------------

def test_no_decay_groups_hold_norms_and_biases_and_keep_the_head_learning_rate():
    model = Tiny()
    optimizer = build_optimizer(model, settings(lr=0.01, head_lr_mult=10.0, weight_decay=0.05,
                                                decay_norms_and_biases=False))
    names = {id(p): name for name, p in model.named_parameters()}
    groups = [([names[id(p)] for p in g["params"]], g["lr"], g["initial_lr"], g["weight_decay"])
              for g in optimizer.param_groups]
    assert groups == [
        (["conv.weight"], 0.01, 0.01, 0.05),
        (["conv.bias", "bn.weight", "bn.bias"], 0.01, 0.01, 0.0),
        (["head.weight"], pytest.approx(0.1), pytest.approx(0.1), 0.05),
        (["head.bias"], pytest.approx(0.1), pytest.approx(0.1), 0.0),
    ]


def test_position_embeddings_tokens_and_every_norm_are_exempt():
    model = TinyTransformer()
    exempt = {name for name, p in model.named_parameters() if id(p) in no_decay_parameter_ids(model)}
    assert exempt == {"pos_embed", "cls_token", "reg_token", "proj.bias", "norm.weight", "norm.bias",
                      "group_norm.weight", "group_norm.bias", "scale"}
    # a model without head_parameters: one decayed and one exempt group, both at lr
    groups = build_optimizer(model, settings(lr=0.01, weight_decay=0.05, decay_norms_and_biases=False)).param_groups
    assert [(len(g["params"]), g["lr"], g["weight_decay"]) for g in groups] == [(1, 0.01, 0.05), (9, 0.01, 0.0)]


def test_frozen_parameters_stay_out_and_empty_groups_are_dropped():
    model = Tiny()
    model.head.requires_grad_(False)
    groups = build_optimizer(model, settings(decay_norms_and_biases=False)).param_groups
    assert [len(g["params"]) for g in groups] == [1, 3]


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_every_optimizer_takes_the_no_decay_groups(kind):
    optimizer = build_optimizer(Tiny(), settings(optimizer=kind, weight_decay=0.05, decay_norms_and_biases=False))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0, 0.05, 0.0]


# --- AdamW -------------------------------------------------------------------------------------------

def test_adamw_is_chosen_with_adams_betas():
    optimizer = build_optimizer(Tiny(), settings(optimizer="adamw", weight_decay=0.01))
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["betas"] == (0.9, 0.999) and optimizer.defaults["weight_decay"] == 0.01
    betas = build_optimizer(Tiny(), TrainSettings.from_config(DEFAULT_TRAIN | {"optimizer": "adamw",
                                                                                "adam_betas": [0.0, 0.9]}))
    assert betas.defaults["betas"] == (0.0, 0.9)
    assert type(build_optimizer(Tiny(), settings(optimizer="adam"))) is torch.optim.Adam


def test_adamw_decays_decoupled_and_spares_the_exempt_group():
    """With a zero gradient Adam's step is 0 / (0 + eps) = 0, so AdamW's only change is the decay
    p <- p * (1 - lr * weight_decay) = 1 - 0.01 * 0.05 = 0.9995 on the decayed weights."""
    model = Tiny()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
            p.grad = torch.zeros_like(p)
    build_optimizer(model, settings(optimizer="adamw", lr=0.01, head_lr_mult=1.0, weight_decay=0.05,
                                    decay_norms_and_biases=False)).step()
    assert torch.allclose(model.conv.weight, torch.full_like(model.conv.weight, 0.9995))
    assert torch.allclose(model.head.weight, torch.full_like(model.head.weight, 0.9995))
    for p in (model.conv.bias, model.bn.weight, model.bn.bias, model.head.bias):
        assert torch.equal(p, torch.ones_like(p))


# --- defaults: every shipped config trains as before -----------------------------------------------

def _legacy_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """build_optimizer before adamw and decay_norms_and_biases existed."""
    head = model.head_parameters() if hasattr(model, "head_parameters") else []
    head_ids = {id(p) for p in head}
    base = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    lr = settings.lr
    groups = [{"params": base, "lr": lr, "initial_lr": lr}]
    if head:
        head_lr = lr * settings.head_lr_mult
        groups.append({"params": [p for p in head if p.requires_grad], "lr": head_lr, "initial_lr": head_lr})
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    betas = settings.adam_betas if settings.adam_betas is not None else (0.9, 0.999)
    return torch.optim.Adam(groups, lr=lr, betas=betas, weight_decay=settings.weight_decay)


def _same_optimizer(new: torch.optim.Optimizer, old: torch.optim.Optimizer) -> None:
    assert type(new) is type(old)
    assert len(new.param_groups) == len(old.param_groups)
    for a, b in zip(new.param_groups, old.param_groups):
        assert [id(p) for p in a["params"]] == [id(p) for p in b["params"]]
        assert {k: v for k, v in a.items() if k != "params"} == {k: v for k, v in b.items() if k != "params"}


def _train_sections(section: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(section, dict):
        for key, value in section.items():
            if key == "train" and isinstance(value, dict) and "steps" in value:
                yield f"{path}.train", value
            yield from _train_sections(value, f"{path}.{key}" if path else key)


SHIPPED = [ROOT / "config.yaml", *sorted((ROOT / "configs").rglob("*.yaml"))]


def _shipped_train_sections() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every train section of config.yaml and configs/**.yaml, and of their experiments."""
    for file in SHIPPED:
        config = load_config(file)
        variants = {"": config} | {f"experiments.{name}.": overlay(config, change)
                                   for name, change in (config.get("experiments") or {}).items()}
        for prefix, variant in variants.items():
            for where, section in _train_sections(variant, ""):
                yield f"{file.name}: {prefix}{where}", section


def test_shipped_configs_build_the_optimizers_and_rates_of_before():
    """Every shipped train section that uses none of AdamW, the no-decay groups and warm-up (the
    DAFormer preset uses them all) builds exactly the optimiser and rates of before."""
    checked = 0
    for where, section in _shipped_train_sections():
        typed = TrainSettings.from_config(section, where)
        if not typed.decay_norms_and_biases or typed.warmup_steps or typed.optimizer == "adamw":
            assert where.startswith("daformer-"), where
            continue
        model = Tiny()
        _same_optimizer(build_optimizer(model, typed), _legacy_optimizer(model, typed))
        for step in (0, 1, typed.steps // 2, typed.steps - 1):
            assert (learning_rate_factor(typed.schedule, step, typed.steps, typed.poly_power, typed.warmup_steps,
                                         typed.warmup_ratio)
                    == _legacy_factor(typed.schedule, step, typed.steps, typed.poly_power)), where
        checked += 1
    assert checked >= 5 * (len(SHIPPED) - 1)  # semantic, instance, selftrain.semantic, selftrain.instance, translation


def test_default_models_keep_their_two_groups():
    config = validate_config({})
    for model, section in ((build_semantic_model(config["semantic"]["model"]), config["semantic"]["train"]),
                           (build_instance_model(config["instance"]["model"]), config["instance"]["train"])):
        typed = TrainSettings.from_config(section)
        new, old = build_optimizer(model, typed), _legacy_optimizer(model, typed)
        assert len(new.param_groups) == 2
        _same_optimizer(new, old)


# --- resume ------------------------------------------------------------------------------------------

class Crash(Exception):
    """A job killed in the middle of the run."""


def test_a_run_resumed_during_warm_up_ends_with_the_weights_and_rates_of_an_uninterrupted_one(tmp_path):
    """AdamW, no-decay groups and warm-up: the rate comes from (step, total) alone, so the run resumed
    at step 4 (of a 6-step warm-up) sets the very rates and reaches the very weights."""
    from selfpanoptic.train.engine import train

    typed = settings(steps=10, optimizer="adamw", lr=0.01, head_lr_mult=10.0, weight_decay=0.05,
                     decay_norms_and_biases=False, warmup_steps=6, warmup_ratio=0.1, schedule="poly",
                     poly_power=1.0, checkpoint_every=2, tensorboard=False)

    def forward(net: Tiny, rng, index: int):
        x = torch.from_numpy(rng.standard_normal((2, 3, 6, 6)).astype("float32"))
        features = net.bn(net.conv(x)).mean(dim=(2, 3))
        return net.head(features).square().mean() + torch.rand(()), {}, 2  # torch's RNG is per step too

    def crashing(net: Tiny, rng, index: int):
        if index == 5:
            raise Crash  # after the checkpoint of step 4
        return forward(net, rng, index)

    def run(work: Path, crash_first: bool) -> tuple[dict[str, torch.Tensor], list[float]]:
        if crash_first:
            torch.manual_seed(0)
            with pytest.raises(Crash):
                train(Tiny(), crashing, typed, work, "id", torch.device("cpu"), progress=False)
        torch.manual_seed(0)
        model = Tiny()
        result = train(model, forward, typed, work, "id", torch.device("cpu"), progress=False)
        assert result.resumed_from == (4 if crash_first else 0)
        with open(work / "metrics.csv", newline="") as handle:
            rates = [float(row["lr"]) for row in csv.DictReader(handle)]
        return model.state_dict(), rates

    whole, whole_rates = run(tmp_path / "whole", crash_first=False)
    resumed, resumed_rates = run(tmp_path / "resumed", crash_first=True)
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    assert len(whole_rates) == 10 and resumed_rates == whole_rates
    # step 0: 0.01 * 0.1 (the ratio); step 3: 0.01 * (1 - 3/10) * (1 - (1 - 3/6) * 0.9) = 0.01 * 0.7 * 0.55
    assert whole_rates[0] == pytest.approx(0.001)
    assert whole_rates[3] == pytest.approx(0.00385)
    assert whole_rates[6] == pytest.approx(0.004)  # after the warm-up: poly alone, 0.01 * (1 - 6/10)
