"""Pseudo-labels for self-training on the target domain.

Semantic pseudo-labels follow SAC (Araslanov & Roth 2021, "Self-supervised Augmentation
Consistency"): a segmentation network (the *student*) is trained on pseudo-labels made by a
momentum copy of itself (the *teacher*). One training iteration:

1. Every target image is replicated into ``V`` views
   (:func:`~selfpanoptic.augment.views.random_view_affines`,
   :func:`~selfpanoptic.augment.views.make_views`): view 0 is the image itself, views 1..V-1 are
   random zoom-in crops, each possibly flipped.
2. The teacher predicts a softmax for every view;
   :func:`~selfpanoptic.pseudo.semantic.make_pseudo_labels` (the one function that makes semantic
   pseudo-labels, in training and for the round's audited file) warps them back to the
   reference frame, averages them and thresholds the fused map per class
   (:func:`~selfpanoptic.pseudo.thresholds.class_thresholds`, from its class peaks and the moving
   class prior); :func:`~selfpanoptic.augment.views.labels_to_views` cuts the labels (255 below
   threshold) and confidences out for every view again. Instance guidance
   (:func:`~selfpanoptic.pseudo.guidance.refine_with_instances`) acts in between, in the
   reference frame.
3. The student sees the views after :func:`~selfpanoptic.augment.photometric.photometric_noise`
   and is trained with :func:`~selfpanoptic.losses.focal.focal_confidence_ce`.
4. The class prior is updated from the teacher's softmax
   (:func:`~selfpanoptic.pseudo.thresholds.update_prior`) and, every few iterations, the teacher
   follows the student (:func:`~selfpanoptic.pseudo.teacher.momentum_update`).

Modules: :mod:`.semantic` (the semantic pseudo-labels of a batch, and the guiding instances),
:mod:`.thresholds` (class-adaptive thresholds, moving class prior),
:mod:`.teacher` (momentum / EMA teacher networks), :mod:`.fused_store` (the ``pseudo-semantic``
stage's per-image fused softmax, kept between its forward pass and its labels), :mod:`.guidance`
(instance-guided refinement, the thesis' addition, and the ``gt_instance_fraction`` ablation), :mod:`.masks` (pseudo instance
masks from clustered embeddings, :mod:`selfpanoptic.clustering`), :mod:`.objectness` (a small
classifier of whole objects against fragments, fitted on the source), :mod:`.grading` (pseudo-labels
graded against ground truth). Randomness comes from explicit generators, so a training loop can
be reproduced and each piece is unit-tested on its own.
"""
