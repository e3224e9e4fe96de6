"""Instances from pixel embeddings: "mean-shift+" clustering inside each thing class.

At inference the instance branch gives one embedding per pixel (see
:mod:`selfpanoptic.losses.embedding`). For every thing class of the semantic prediction, the
embeddings of that class's pixels are clustered:

1. :func:`~.meanshift.mean_shift`: flat-kernel mean-shift with ``bandwidth = delta_v``, seeded
   and post-processed like ``sklearn.cluster.MeanShift(bin_seeding=True, cluster_all=True)``;
2. :func:`~.meanshift.merge_close_clusters` (the "+"): clusters whose means lie within
   ``delta_d`` of a larger cluster's mean are merged into it, since training pushes distinct
   instances at least ``2 * delta_d`` apart;
3. clusters smaller than ``min_size`` pixels are dropped.

:func:`~.instances.instances_from_embeddings_batch` runs the three steps for every (image, thing
class) of a batch in one go and numbers the instances of every image consecutively, class by
class; :func:`~.instances.instances_from_embeddings` is the same for one image. Inference
(:mod:`selfpanoptic.stages.predict_instance`) and instance self-training
(:mod:`selfpanoptic.pseudo.masks`) both use it, hence a package of its own.
:mod:`.meanshift` holds the clustering, :mod:`.climb` the mean-shift iterations, :mod:`.kdtree`
the k-d ordering and the ball structure that finds the points near a block of seeds,
:mod:`.instances` the batch driver.
"""

from __future__ import annotations

from .instances import instances_from_embeddings, instances_from_embeddings_batch
from .meanshift import bin_seeds, mean_shift, merge_close_clusters

__all__ = ["bin_seeds", "instances_from_embeddings", "instances_from_embeddings_batch", "mean_shift",
           "merge_close_clusters"]
