"""Pseudo-labels for self-training. :mod:`.clustering` turns embeddings into instances."""

from __future__ import annotations

from .clustering import bin_seeds, instances_from_embeddings, mean_shift, merge_close_clusters

__all__ = ["bin_seeds", "instances_from_embeddings", "mean_shift", "merge_close_clusters"]
