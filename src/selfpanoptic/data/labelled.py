"""Whether a target split has labels: the one decision that the readers and the workflow share.

A split with no label file at all is *unlabelled*: it is indexed and cached with its images
only (labels all ignore), self-training uses it as it is, and what needs ground truth (grading
pseudo-labels, the oracle, evaluation) is skipped. A split with some label files is labelled,
and its images without labels fall under the ``unpaired`` policy as before.

The workflow decides when it builds its job graph, before a toy target exists: the toy
generator always writes Cityscapes labels, and an ``images`` target has val labels exactly when
``val_labels`` is set (its train split never has any).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CITYSCAPES_LABEL_PATTERN = "*/*_gtFine_labelIds.png"
"""A Cityscapes label file below ``gtFine/<split>/``."""


def has_label_files(folder: str | Path, pattern: str = CITYSCAPES_LABEL_PATTERN) -> bool:
    """Whether ``folder`` holds at least one file matching ``pattern`` (False if it does not exist)."""
    folder = Path(folder)
    return folder.is_dir() and next(folder.glob(pattern), None) is not None


def target_split_labelled(target: dict[str, Any], which: str, toy: bool = False) -> bool:
    """Whether the target's train or val split has labels.

    Parameters
    ----------
    target:
        The validated ``datasets.target`` config section.
    which:
        ``train`` or ``val``: the split named by ``train_split`` / ``val_split`` (cityscapes) or
        matched by ``train_glob`` / ``val_glob`` (images).
    toy:
        ``toy.enabled``: the toy generator writes labels for both splits of a cityscapes target.

    Returns
    -------
    bool
        True when the split has label files (or will have, for a toy target).
    """
    if which not in ("train", "val"):
        raise ValueError(f"which must be 'train' or 'val', not {which!r}")
    if target.get("format", "cityscapes") == "images":
        return which == "val" and target.get("val_labels") is not None
    if toy:
        return True
    return has_label_files(Path(target["root"]) / "gtFine" / target[f"{which}_split"])


__all__ = ["CITYSCAPES_LABEL_PATTERN", "has_label_files", "target_split_labelled"]
