"""Evaluation metrics: semantic segmentation IoU and Cityscapes-style instance AP (pure numpy)."""

from __future__ import annotations

from .instance import DEFAULT_OVERLAPS, InstanceEvaluator, average_precision, instances_to_predictions
from .panoptic import PanopticEvaluator, evaluate_panoptic_folders, format_table
from .semantic import SemanticEvaluator, class_iou, confusion_matrix, mean_iou, semantic_scores

__all__ = [
    "confusion_matrix",
    "class_iou",
    "mean_iou",
    "semantic_scores",
    "SemanticEvaluator",
    "InstanceEvaluator",
    "instances_to_predictions",
    "average_precision",
    "DEFAULT_OVERLAPS",
    "PanopticEvaluator",
    "evaluate_panoptic_folders",
    "format_table",
]
