"""Predictions of trained models on a dataset cache, written as HDF5 intermediates.

Semantic: ``labels`` (N, H, W) uint8 argmax trainIds and ``confidence`` (N, H, W) float16 softmax
maximum. Instance: ``instances`` (N, H, W) int32 (0 = none, 1..K per image) found by clustering
each group model's embeddings inside the predicted semantic mask of each of its thing classes,
plus one row per instance in ``segments`` (image index, instance id, trainId, pixel area) and
``segment_scores`` (mean semantic confidence over the mask, used to rank instances for AP).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .classes import CLASS_NAMES, class_id
from .h5io import atomic_h5, create_stack, open_intermediate, write_strings
from .models import load_model_file, model_from_file
from .pseudo import instances_from_embeddings
from .pseudo.masks import pseudo_instances
from .train.data import CachedImages, normalise
from .train.engine import pick_device


def _batches(count: int, size: int):
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


def predict_semantic(
    model_path: str | Path, cache_path: str | Path, out: str | Path, device: str = "auto",
    batch_size: int = 8, progress: bool = True,
) -> None:
    """Run a semantic model file over every image of a cache; write labels + confidence to ``out``."""
    dev = pick_device(device)
    model = model_from_file(model_path).to(dev)
    cache = CachedImages(cache_path)
    shape = (cache.height, cache.width)
    with atomic_h5(out, "semantic_prediction", {"model": str(model_path)}, inputs=[model_path, cache_path]) as h5:
        h5.attrs["class_names"] = list(CLASS_NAMES)
        labels = create_stack(h5, "labels", len(cache), shape, np.uint8, description="predicted trainIds")
        confidence = create_stack(h5, "confidence", len(cache), shape, np.float16, description="softmax maximum")
        write_strings(h5, "image_ids", cache.image_ids)
        with torch.no_grad():
            for idx in tqdm(list(_batches(len(cache), batch_size)), desc="predict semantic", disable=not progress):
                x = normalise(np.stack([cache.read("images", i) for i in idx])).to(dev)
                prob = torch.softmax(model(x).float(), dim=1)
                conf, pred = prob.max(dim=1)
                labels[idx.start : idx.stop] = pred.cpu().numpy().astype(np.uint8)
                confidence[idx.start : idx.stop] = conf.cpu().numpy().astype(np.float16)
    cache.close()


def predict_instance(
    model_paths: list[str | Path], semantic_path: str | Path, cache_path: str | Path, out: str | Path,
    settings: dict[str, Any], device: str = "auto", batch_size: int = 8, progress: bool = True,
    pseudo: dict[str, Any] | None = None,
) -> None:
    """Cluster each group model's embeddings inside the predicted masks of its classes.

    ``settings`` is the config's ``instance`` section (``loss`` margins, ``clustering``).
    ``pseudo``: the ``selftrain.instance`` section to write *pseudo* instance masks instead (a
    round's starting point, for the audit): its ``min_size`` and ``min_confidence`` apply
    (:func:`~selfpanoptic.pseudo.masks.pseudo_instances`) and the file's stage is
    ``instance_pseudo_labels``.
    """
    dev = pick_device(device)
    groups = []
    for path in model_paths:
        saved = load_model_file(path)
        groups.append((model_from_file(path).to(dev), [class_id(c) for c in saved["classes"]]))
    cache = CachedImages(cache_path)
    shape = (cache.height, cache.width)
    bandwidth, delta_d = settings["loss"]["delta_v"], settings["loss"]["delta_d"]
    min_size = settings["clustering"]["min_size"]
    stage, provenance_settings = "instance_prediction", settings
    if pseudo is not None:
        stage, provenance_settings = "instance_pseudo_labels", {"instance": settings, "pseudo": pseudo}

    def cluster(embeddings: torch.Tensor, semantic: np.ndarray, confidence: np.ndarray, classes: list[int]):
        if pseudo is None:
            return instances_from_embeddings(
                embeddings, semantic, thing_classes=classes, bandwidth=bandwidth, delta_d=delta_d, min_size=min_size, device=dev,
            )
        return pseudo_instances(
            embeddings, semantic, confidence, classes, bandwidth, delta_d, pseudo["min_size"], pseudo["min_confidence"],
            device=dev,
        )

    rows, scores = [], []
    with open_intermediate(semantic_path) as sem, atomic_h5(
        out, stage, provenance_settings, inputs=[*map(str, model_paths), semantic_path, cache_path]
    ) as h5:
        instances_out = create_stack(h5, "instances", len(cache), shape, np.int32, description="instance ids, 0 = none")
        write_strings(h5, "image_ids", cache.image_ids)
        with torch.no_grad():
            for idx in tqdm(list(_batches(len(cache), batch_size)), desc="predict instance", disable=not progress):
                x = normalise(np.stack([cache.read("images", i) for i in idx])).to(dev)
                # embeddings stay on the device: mean-shift runs there too (GPU clustering)
                embeddings = [model(x).float() for model, _ in groups]
                for b, i in enumerate(idx):
                    semantic, confidence = sem["labels"][i], sem["confidence"][i].astype(np.float32)
                    merged = np.zeros(shape, dtype=np.int32)
                    next_id = 1
                    for (_, classes), emb in zip(groups, embeddings):
                        inst, inst_classes = cluster(emb[b], semantic, confidence, classes)
                        for k in sorted(inst_classes):
                            mask = inst == k
                            merged[mask] = next_id
                            rows.append((i, next_id, inst_classes[k], int(mask.sum())))
                            scores.append(float(confidence[mask].mean()))
                            next_id += 1
                    instances_out[i] = merged
        segments = np.array(rows, dtype=np.int64).reshape(-1, 4)
        ds = h5.create_dataset("segments", data=segments)
        ds.attrs["columns"] = ["image_index", "instance_id", "train_id", "area"]
        h5.create_dataset("segment_scores", data=np.array(scores, dtype=np.float32))
    cache.close()
