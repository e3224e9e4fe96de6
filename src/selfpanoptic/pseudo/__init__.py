"""Pseudo-labels for self-training: :mod:`.clustering` turns embeddings into instances (mean-shift+),
:mod:`.sac` holds the building blocks of SAC-style semantic pseudo-labels (views, warps,
class-adaptive thresholds, moving class prior, focal confidence-weighted loss)."""

from __future__ import annotations

from .clustering import bin_seeds, instances_from_embeddings, mean_shift, merge_close_clusters

__all__ = ["bin_seeds", "instances_from_embeddings", "mean_shift", "merge_close_clusters"]
