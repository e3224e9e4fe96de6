"""Source pretraining (and the target oracle) of the semantic model: cross-entropy on labelled crops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..classes import IGNORE
from ..models import build_semantic_model, init_from_checkpoint
from .data import CachedImages, sample_batch
from .engine import finish, pick_device, save_model_file, train


def train_semantic(
    cache_path: str | Path, out: str | Path, work_dir: str | Path, settings: dict[str, Any],
    device: str = "auto", progress: bool = True, desc: str = "pretrain semantic",
) -> None:
    """Train a DeepLab on the labelled images of ``cache_path`` and write the model file ``out``.

    ``settings`` is the config's ``semantic`` section (``model`` and ``train``).
    """
    spec, train_settings = settings["model"], settings["train"]
    torch.manual_seed(train_settings["seed"])
    model = build_semantic_model(spec)
    init_from_checkpoint(model, spec["init"])
    cache = CachedImages(cache_path)
    indices = np.arange(len(cache))
    crop = tuple(train_settings["crop"])
    dev = pick_device(device)

    def step(net: torch.nn.Module, rng: np.random.Generator, _: int):
        images, labels, _inst = sample_batch(
            cache, rng, indices, train_settings["batch_size"], crop, train_settings["hflip"], train_settings["jitter"]
        )
        logits = net(images.to(dev))
        loss = F.cross_entropy(logits.float(), labels.to(dev), ignore_index=IGNORE)
        return loss, {"ce": float(loss.detach())}, len(images)

    identity = {"settings": settings, "data": str(cache_path)}
    result = train(model, step, train_settings, work_dir, identity, dev, desc, progress)
    save_model_file(out, model, "semantic", spec, {"train_seconds": result.seconds, "images_per_second": result.images_per_second})
    finish(work_dir)
    cache.close()
    print(f"{desc}: {result.steps} steps in {result.seconds:.1f} s ({result.images_per_second:.1f} images/s) -> {out}")
