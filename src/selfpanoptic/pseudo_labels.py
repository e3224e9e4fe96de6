"""A round's pseudo-labels on the target train images, as HDF5 files a person can audit.

:func:`export_semantic_pseudo_labels` writes what round r's semantic self-training starts from:
the pseudo-labels of round r-1's model (the round's initial teacher), made exactly as in training
(multi-view fusion, class-adaptive thresholds, instance-guided refinement), plus the class prior
over the whole split, which seeds the training's moving prior. Datasets:

- ``labels`` (N, H, W) uint8: kept pseudo-labels, 255 = ignored (below its class threshold);
- ``argmax`` (N, H, W) uint8: the fused prediction before thresholding (for the audit);
- ``confidence`` (N, H, W) float16: fused softmax maximum;
- ``labels_before_guidance`` (N, H, W) uint8: only when instances guided the labels;
- ``thresholds`` (N, 19) float32, ``prior`` (19,) float32, ``image_ids``.

:func:`guidance_instances` gives the instance maps that guide round r: round r-1's predicted
instances on the target train split, or (the upper-bound ablation) a share of the ground-truth
instances.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .classes import CLASS_NAMES, IGNORE, NUM_CLASSES
from .config import guidance_mode
from .errors import InputError
from .h5io import atomic_h5, create_stack, open_intermediate, read_strings, write_strings
from .models import model_from_file
from .predict import _batches
from .pseudo.sac import (
    class_peaks,
    make_views,
    random_view_affines,
    refine_with_instances,
    sample_instances,
    thresholds_from_peaks,
    warp_to_reference,
)
from .train.data import CachedImages, normalise_unit, to_unit
from .train.engine import pick_device


def guidance_instances(
    guidance: dict[str, Any], round_index: int, cache: CachedImages, predicted_path: str | Path | None, seed: int,
) -> np.ndarray | None:
    """Instance maps ``(N, H, W)`` int32 guiding the pseudo-labels of round ``round_index``, or None.

    ``predicted_path``: round r-1's instance predictions on the same images (required in
    ``predicted`` mode; its image ids must match the cache's). In ``ground_truth`` mode each image
    keeps ``gt_instance_fraction`` of its ground-truth instances, drawn once per image from
    ``(seed, image index)``, so the same annotations guide every step of the round.
    """
    mode = guidance_mode(guidance, round_index)
    if mode == "none":
        return None
    if mode == "ground_truth":
        fraction = guidance["gt_instance_fraction"]
        return np.stack([
            sample_instances(cache.read("instances", i).astype(np.int32), fraction, np.random.default_rng([seed, i]))
            for i in range(len(cache))
        ])
    if predicted_path is None:
        raise InputError(
            f"round {round_index} is guided by the previous round's instances, but none were given",
            fix="pass --guidance-instances with round r-1's instance prediction on the target train split",
        )
    with open_intermediate(predicted_path) as h5:
        ids = read_strings(h5, "image_ids")
        if list(ids) != list(cache.image_ids):
            raise InputError(
                "instance predictions do not list the same images as the target cache",
                predicted_path, "rerun the prediction of the previous round on this cache",
            )
        return h5["instances"][()].astype(np.int32)


@torch.no_grad()
def export_semantic_pseudo_labels(
    model_path: str | Path, cache_path: str | Path, out: str | Path, settings: dict[str, Any], round_index: int,
    guidance_path: str | Path | None = None, device: str = "auto", batch_size: int = 8, progress: bool = True,
) -> None:
    """Write the pseudo-labels of the semantic model ``model_path`` on every image of ``cache_path``.

    ``settings``: the config's ``selftrain`` section without ``rounds`` (``semantic`` and
    ``guidance``). Views of image i come from the generator seeded ``(train.seed, i)``.
    """
    sem, guidance = settings["semantic"], settings["guidance"]
    dev = pick_device(device)
    model = model_from_file(model_path).to(dev)
    cache = CachedImages(cache_path)
    seed = sem["train"]["seed"]
    guide = guidance_instances(guidance, round_index, cache, guidance_path, seed)
    n, shape = len(cache), (cache.height, cache.width)
    argmax = np.zeros((n, *shape), dtype=np.uint8)
    confidence = np.zeros((n, *shape), dtype=np.float32)
    peaks = np.zeros((n, NUM_CLASSES), dtype=np.float32)
    prob_sum = torch.zeros(NUM_CLASSES, dtype=torch.float64)
    for idx in tqdm(list(_batches(n, batch_size)), desc="pseudo-labels", disable=not progress):
        images = to_unit(np.stack([cache.read("images", i) for i in idx])).to(dev)
        affines = torch.cat([
            random_view_affines(1, sem["views"], np.random.default_rng([seed, i]), sem["min_scale"], sem["max_scale"], sem["flip_p"])
            for i in idx
        ])
        probs = torch.softmax(model(normalise_unit(make_views(images, affines))).float(), dim=1)
        fused, coverage = warp_to_reference(probs, affines)
        conf, top = fused.max(dim=1)
        argmax[idx.start : idx.stop] = top.cpu().numpy()
        confidence[idx.start : idx.stop] = conf.cpu().numpy()
        peaks[idx.start : idx.stop] = class_peaks(fused, coverage > 0).cpu().numpy()
        prob_sum += fused.double().sum(dim=(0, 2, 3)).cpu()
    prior = (prob_sum / (n * shape[0] * shape[1])).float()
    thresholds = thresholds_from_peaks(
        torch.from_numpy(peaks), prior, sem["threshold_ratio"], sem["prior_temperature"], sem["threshold_floor"]
    ).numpy()
    kept = confidence > np.take_along_axis(thresholds, argmax.reshape(n, -1).astype(np.int64), 1).reshape(argmax.shape)
    labels = np.where(kept, argmax, IGNORE).astype(np.uint8)
    inputs = [model_path, cache_path] + ([guidance_path] if guidance_path else [])
    with atomic_h5(out, "semantic_pseudo_labels", settings, inputs=inputs) as h5:
        h5.attrs["class_names"] = list(CLASS_NAMES)
        h5.attrs["round"] = round_index
        h5.attrs["guidance"] = guidance_mode(guidance, round_index)
        write_strings(h5, "image_ids", cache.image_ids)
        if guide is not None:
            before = create_stack(h5, "labels_before_guidance", n, shape, np.uint8, description="pseudo-labels before instance guidance")
            before[...] = labels
            labels = np.stack([refine_with_instances(labels[i], guide[i]) for i in range(n)])
        create_stack(h5, "labels", n, shape, np.uint8, description="kept pseudo-labels (trainIds), 255 = ignored")[...] = labels
        create_stack(h5, "argmax", n, shape, np.uint8, description="fused teacher argmax before thresholds")[...] = argmax
        create_stack(h5, "confidence", n, shape, np.float16, description="fused softmax maximum")[...] = confidence
        h5.create_dataset("thresholds", data=thresholds.astype(np.float32)).attrs["description"] = "class thresholds per image"
        h5.create_dataset("prior", data=prior.numpy()).attrs["description"] = "mean fused softmax per class over the split"
    cache.close()
    kept_share = float((labels != IGNORE).mean())
    print(f"pseudo-labels of round {round_index}: {n} images, {kept_share:.1%} of pixels kept -> {out}")


def read_prior(path: str | Path) -> torch.Tensor:
    """The class prior ``(19,)`` stored in a semantic pseudo-label file."""
    with open_intermediate(path) as h5:
        if h5.attrs.get("stage") != "semantic_pseudo_labels":
            raise InputError("not a semantic pseudo-label file", path, "give the round's pseudo/semantic_*.h5")
        return torch.from_numpy(h5["prior"][()]).float()
