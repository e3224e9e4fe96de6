"""``selfpanoptic synthesize``: the three toy domains, written in the real datasets' formats.

- synthia-like: flat-shaded renders in the Synthia RAND-CITYSCAPES layout; no terrain; trucks and
  trains carry instance ids but class 0, as in the real Synthia; ``Depth/`` files from the
  scene's geometry.
- gta-like: another render style in the GTA5 layout; all 19 classes, no instances; exactly
  ``gta_truck_and_train_fraction`` of the images contain both a truck and a train, the others at
  most one of the two.
- target (cityscapes-like): textured, noisy, blurred, colour-cast renders with other object
  sizes, in the Cityscapes layout with train and val splits, panoptic ground truth and
  ``disparity/`` files from the scene's geometry.

Every image is drawn from its own seed ``(seed, domain, index)``, so the output does not depend
on the number of worker processes. Each domain has its own image size (``toy.synthia_size``,
``gta_size``, ``target_size``, else ``height`` x ``width``), and gta-like frames may vary in size
(``gta_size_jitter``): :mod:`.sizes`. Each domain folder is written under a temporary name and
renamed when complete; a marker file records what made it.
"""

from __future__ import annotations

import contextlib
import io
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..atomic import atomic_output
from ..errors import InputError
from .formats import write_cityscapes_sample, write_gta5_sample, write_synthia_sample
from .render import STYLES, render_scene
from .scenes import PROFILES, generate_scene
from .sizes import frame_size, recorded_settings

MARKER = ".selfpanoptic-toy.json"
"""File in each generated root; its presence marks a folder the generator may replace."""

DOMAIN_SEEDS = {"synthia": 1, "gta": 2, "target": 3}
TRAIN_CITIES = ("toyburg", "pixelstadt")
VAL_CITIES = ("valmont",)

DOMAIN_STYLE = {"synthia": "synthia", "gta": "gta", "target": "cityscapes"}
"""Key of each domain in the scene PROFILES and render STYLES."""


@dataclass(frozen=True)
class ImageJob:
    """One image to generate: which domain, where, its size, and whether a truck/train is forced."""

    domain: str
    index: int
    root: str
    height: int
    width: int
    split: str = ""
    city: str = ""
    include_truck: bool | None = None
    include_train: bool | None = None


def gta_truck_train_plan(count: int, fraction: float, seed: int) -> list[tuple[bool, bool]]:
    """(include_truck, include_train) per gta image: ``round(fraction * count)`` images get both,
    the others get neither, a truck only or a train only (probabilities 1/2, 1/4, 1/4).
    """
    rng = np.random.default_rng([seed, DOMAIN_SEEDS["gta"], 0xA11])
    both = set(rng.permutation(count)[: int(round(fraction * count))].tolist())
    plan = []
    for i in range(count):
        if i in both:
            plan.append((True, True))
            continue
        choice = rng.choice(3, p=[0.5, 0.25, 0.25])
        plan.append((choice == 1, choice == 2))
    return plan


def image_jobs(settings: dict[str, Any], roots: dict[str, str | Path]) -> list[ImageJob]:
    """Every image of the three domains, from the config's ``toy`` section."""
    seed = settings["seed"]

    def size(domain: str, index: int) -> tuple[int, int]:
        return frame_size(settings, domain, index, seed, DOMAIN_SEEDS[domain])

    jobs = [ImageJob("synthia", i, str(roots["synthia"]), *size("synthia", i)) for i in range(settings["synthia_images"])]
    plan = gta_truck_train_plan(settings["gta_images"], settings["gta_truck_and_train_fraction"], seed)
    jobs += [ImageJob("gta", i, str(roots["gta"]), *size("gta", i), include_truck=t, include_train=r)
             for i, (t, r) in enumerate(plan)]
    for split, count, cities in (
        ("train", settings["target_train_images"], TRAIN_CITIES),
        ("val", settings["target_val_images"], VAL_CITIES),
    ):
        offset = 0 if split == "train" else settings["target_train_images"]
        jobs += [
            ImageJob("target", offset + i, str(roots["target"]), *size("target", offset + i), split, cities[i % len(cities)])
            for i in range(count)
        ]
    return jobs


def generate_image(job: ImageJob, seed: int) -> None:
    """Generate, render and write one image with its labels."""
    rng = np.random.default_rng([seed, DOMAIN_SEEDS[job.domain], job.index])
    scene = generate_scene(
        rng, job.height, job.width, PROFILES[DOMAIN_STYLE[job.domain]],
        include_truck=job.include_truck, include_train=job.include_train,
    )
    style = STYLES[DOMAIN_STYLE[job.domain]]
    image = render_scene(scene, style, rng)
    root = Path(job.root)
    if job.domain == "synthia":
        write_synthia_sample(root, f"{job.index:07d}", image, scene.semantic, scene.instances, depth=scene.depth)
    elif job.domain == "gta":
        write_gta5_sample(root, f"{job.index + 1:05d}", image, scene.semantic)
    else:
        stem = f"{job.city}_{job.index:06d}_000019"
        write_cityscapes_sample(root, job.split, job.city, stem, image, scene.semantic, scene.instances,
                                scene.instance_classes, depth=scene.depth)


def _generate_chunk(args: tuple[list[ImageJob], int]) -> int:
    jobs, seed = args
    for job in jobs:
        generate_image(job, seed)
    return len(jobs)


def write_panoptic_ground_truth(target_root: Path, splits: list[str]) -> None:
    """Cityscapes panoptic GT (``gtFine/cityscapes_panoptic_<split>.json`` + PNG folder) by cityscapesscripts."""
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    gt_fine = target_root / "gtFine"
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per file
        convert2panoptic(cityscapesPath=str(gt_fine), outputFolder=str(gt_fine), setNames=splits)


def check_toy_roots(config: dict[str, Any]) -> None:
    """Refuse to generate toy data into a folder that holds anything but earlier toy data.

    The workflow replaces its output folders; this keeps a real dataset root, set by mistake
    while ``toy.enabled`` is true, from being deleted.
    """
    if not config["toy"]["enabled"]:
        return
    target = config["datasets"].get("target", {})
    if (target.get("train_split", "train"), target.get("val_split", "val")) != ("train", "val"):
        raise InputError(
            "the toy target domain is written with the splits 'train' and 'val'",
            None,
            "keep datasets.target.train_split/val_split at train/val while toy.enabled is true",
        )
    for name, entry in config["datasets"].items():
        root = Path(entry["root"])
        if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
            raise InputError(
                f"toy.enabled is true, but the {name} root already holds data that the toy generator did not write",
                root,
                "set toy.enabled: false to use this dataset, or point datasets."
                f"{name}.root at a new folder for the toy domains",
            )


def synthesize_toy_domains(
    settings: dict[str, Any], roots: dict[str, str | Path], workers: int = 1, progress: bool = True
) -> None:
    """Write the three toy domains to ``roots`` (keys synthia, gta, target).

    ``settings`` is the config's ``toy`` section. Folders already at ``roots`` are replaced only
    once the new ones are complete; a folder not made by this generator is never replaced.
    """
    check_toy_roots({"toy": {"enabled": True}, "datasets": {k: {"root": str(v)} for k, v in roots.items()}})
    seed = settings["seed"]
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(atomic_output(root)) for name, root in roots.items()}
        for folder in tmp.values():
            folder.mkdir()
        jobs = image_jobs(settings, tmp)
        chunks = [jobs[i : i + 16] for i in range(0, len(jobs), 16)]
        bar = tqdm(total=len(jobs), desc="synthesize", unit="img", disable=not progress)
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for done in pool.map(_generate_chunk, [(c, seed) for c in chunks]):
                    bar.update(done)
        else:
            for chunk in chunks:
                bar.update(_generate_chunk((chunk, seed)))
        bar.close()
        write_panoptic_ground_truth(tmp["target"], ["train", "val"])
        for name, folder in tmp.items():
            marker = {"domain": name, "generator": "selfpanoptic synthesize", "version": __version__,
                      "settings": recorded_settings(settings)}
            (folder / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
