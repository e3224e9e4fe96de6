"""What the workflow will need from real datasets, checked when it starts rather than hours later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import datasets_in_use, has_instances
from ..errors import InputError
from .labelled import target_split_labelled


def required_dataset_paths(config: dict[str, Any]) -> dict[str, Path]:
    """The dataset files and folders a run reads, by what they are for.

    ``config``: the validated workflow config. The roots of the datasets in use (a source left
    out of ``mixing.sources`` is never read); when the run has instance stages, the panoptic
    ground truth of a Cityscapes target whose val split has labels (JSON and PNG folder, for
    panoptic fusion and PQ); for an image-folder target, its ``val_labels`` folder when set (the
    workflow makes the panoptic ground truth from it).
    """
    datasets = config["datasets"]
    target = datasets["target"]
    root = Path(target["root"])
    paths = {f"{name} root (datasets.{name}.root)": Path(datasets[name]["root"]) for name in datasets_in_use(config)}
    if target["format"] == "images":
        if target["val_labels"] is not None:
            paths["target val labels (datasets.target.val_labels)"] = Path(target["val_labels"])
    elif has_instances(config) and target_split_labelled(target, "val"):
        val = target["val_split"]
        paths[f"target {val} panoptic ground-truth JSON"] = root / "gtFine" / f"cityscapes_panoptic_{val}.json"
        paths[f"target {val} panoptic ground-truth PNGs"] = root / "gtFine" / f"cityscapes_panoptic_{val}"
    return paths


def check_required_dataset_files(config: dict[str, Any]) -> None:
    """Raise one :class:`InputError` listing every missing dataset path (nothing to check for toy runs,
    whose datasets the workflow generates)."""
    if config["toy"]["enabled"]:
        return
    absent = {what: path for what, path in required_dataset_paths(config).items() if not path.exists()}
    if absent:
        fixes = []
        if any("root" in what for what in absent):
            fixes.append("set datasets.<name>.root to the dataset folders")
        if any("panoptic" in what for what in absent):
            fixes.append("create the panoptic ground truth with "
                         "python -m cityscapesscripts.preparation.createPanopticImgs")
        if any("val_labels" in what for what in absent):
            fixes.append("set datasets.target.val_labels to the folder of the val label files, or null")
        raise InputError(
            "the datasets lack what the workflow will need:\n" + "\n".join(f"  {w}: {p}" for w, p in absent.items()),
            fix="; ".join(fixes),
        )
