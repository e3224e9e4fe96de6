"""The one panoptic inference path: class probabilities -> instances -> clean-up -> fusion -> official files.

Every panoptic prediction of the package is made by these steps, in this order:

1. :meth:`Predictor.predict`: an image's semantic labels (argmax of the softmax probabilities,
   averaged over the ``inference`` passes and upsampled bilinearly to the image's size) and its
   instances (each class group's embeddings clustered inside the predicted thing masks), both
   by :mod:`selfpanoptic.inference`;
2. :func:`fuse`: the instance masks cleaned (:func:`selfpanoptic.fusion.clean_instance_masks`,
   when :class:`FusionSettings` asks for it) and fused with the labels
   (:func:`selfpanoptic.fusion.fuse_panoptic`);
3. :func:`write_panoptic_files`: ``panoptic/<image id>_panoptic.png`` per image and
   ``panoptic.json``, the files ``evalPanopticSemanticLabeling`` reads.

``fuse-panoptic`` runs steps 2 and 3 on a run's predictions (step 1 being ``predict-semantic`` and
``predict-instance``, which run the same :mod:`selfpanoptic.inference` functions over a dataset
cache); ``predict-panoptic`` runs all three on a folder of images
(:mod:`selfpanoptic.folder_prediction`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .formats.panoptic_png import panoptic_document, write_panoptic_prediction
from .fusion import clean_instance_masks, fuse_panoptic
from .settings import FusionSettings

__all__ = ["ImagePrediction", "PANOPTIC_FOLDER", "PANOPTIC_JSON", "Predictor", "fuse",
           "write_panoptic_files"]

PANOPTIC_FOLDER = "panoptic"
"""Subfolder of a panoptic prediction holding the ``<image id>_panoptic.png`` files."""

PANOPTIC_JSON = "panoptic.json"
"""The COCO-panoptic JSON beside :data:`PANOPTIC_FOLDER`."""


def fuse(semantic: np.ndarray, instances: np.ndarray, fusion: FusionSettings) -> tuple[np.ndarray, list[dict]]:
    """One image's panoptic map: its instances cleaned up as ``fusion`` says, then fused.

    Parameters
    ----------
    semantic : numpy.ndarray of uint8, shape (H, W)
        trainIds 0..18, 255 = no prediction.
    instances : numpy.ndarray of int, shape (H, W)
        Instance ids, 0 = no instance (before the clean-up).
    fusion : FusionSettings
        The clean-up and the smallest stuff segment.

    Returns
    -------
    panoptic_ids : numpy.ndarray of int32, shape (H, W)
        Cityscapes panoptic ids (0 void, labelId, labelId * 1000 + k).
    segments : list of dict
        One per non-void id, as :func:`selfpanoptic.fusion.fuse_panoptic` describes them.
    """
    if fusion.morphology is not None:
        morphology = fusion.morphology
        instances = clean_instance_masks(instances, morphology.opening_radius, morphology.closing_radius,
                                         morphology.min_size)
    return fuse_panoptic(semantic, instances, fusion.stuff_min_area)


def write_panoptic_files(
    out: Path, fused: Iterable[tuple[str, np.ndarray, list[dict]]], images: list[dict], categories: list[dict]
) -> list[dict]:
    """Write ``out/panoptic/<image id>_panoptic.png`` per fused image, then ``out/panoptic.json``.

    Parameters
    ----------
    out : pathlib.Path
        The prediction folder (created if missing).
    fused : iterable of (str, numpy.ndarray, list of dict)
        ``(image id, panoptic ids (H, W), segments)`` per image, as :func:`fuse` returns them;
        consumed once, each PNG written as its image comes (a generator keeps one image in memory).
    images : list of dict
        The JSON's ``images`` entries (``id``, ``file_name``, ``height``, ``width``): those of the
        ground-truth JSON, or one per predicted image. Every fused image id must be among them.
    categories : list of dict
        The JSON's ``categories``.

    Returns
    -------
    list of dict
        The ``annotations`` written, in the order of ``fused``.

    Raises
    ------
    ValueError
        When an image id is not a plain file-name prefix, is fused twice or is not in
        ``images`` (:func:`selfpanoptic.formats.panoptic_png.panoptic_document`).
    """
    out = Path(out)
    (out / PANOPTIC_FOLDER).mkdir(parents=True, exist_ok=True)
    annotations = [write_panoptic_prediction(out / PANOPTIC_FOLDER, image_id, ids, segments)
                   for image_id, ids, segments in fused]
    (out / PANOPTIC_JSON).write_text(json.dumps(panoptic_document(images, annotations, categories)))
    return annotations


@dataclass(frozen=True)
class ImagePrediction:
    """An image's semantic and instance prediction at the image's own size ``(H, W)``.

    ``labels``: uint8 trainIds; ``confidence``: float16 softmax maximum; ``instances``: int32
    ids 1..K before any clean-up (None without instance models); ``classes``, ``scores``: trainId
    and score (mean semantic confidence) of each instance id.
    """

    labels: np.ndarray
    confidence: np.ndarray
    instances: np.ndarray | None
    classes: dict[int, int]
    scores: dict[int, float]


@dataclass(frozen=True)
class Predictor:
    """A run's models and how they run on an image of any size.

    Attributes
    ----------
    semantic : torch.nn.Module
        The semantic model, on ``device``, in eval mode.
    groups : list of (torch.nn.Module, list of int)
        The instance models with their thing trainIds (``groups`` of
        :func:`selfpanoptic.inference.image_instances`); empty for a semantic-only run.
    working : (int, int)
        The working resolution (height, width) the models were trained at: each image is resized
        to it (bilinear, as the dataset cache stores images) before the models see it.
    device : torch.device
        Where the models run.
    inference : selfpanoptic.settings.InferenceSettings
        How the models run (passes, scales, flip): :func:`selfpanoptic.dense.dense_predict`.
    make_cluster : callable
        ``make_cluster(area_ratio)``: the :data:`selfpanoptic.inference.Cluster` for output images
        of ``area_ratio`` output pixels per working-resolution pixel.
    """

    semantic: Any
    groups: list
    working: tuple[int, int]
    device: Any
    inference: Any
    make_cluster: Callable[[float], Callable]

    def predict(self, image: np.ndarray) -> ImagePrediction:
        """The prediction of one uint8 RGB image ``(H, W, 3)`` at its own size ``(H, W)``.

        The class probabilities and embeddings are upsampled bilinearly from the working
        resolution to ``(H, W)``; the clustering's smallest instance is scaled by the ratio of the
        areas, so that the same objects are kept at either resolution.
        """
        # torch only here: fusing and writing (fuse-panoptic) need no model
        from .data.base import resize_image
        from .inference import image_instances, predict_semantic_batch

        size = image.shape[:2]
        batch = resize_image(image, self.working)[None]
        labels, confidence = predict_semantic_batch(self.semantic, batch, self.device, self.inference, size)
        if not self.groups:
            return ImagePrediction(labels[0], confidence[0], None, {}, {})
        cluster = self.make_cluster(size[0] * size[1] / (self.working[0] * self.working[1]))
        instances, rows, scores = next(image_instances(self.groups, batch, labels, confidence, cluster, self.device,
                                                       self.inference, size))
        ids = [row[0] for row in rows]
        return ImagePrediction(labels[0], confidence[0], instances, {row[0]: row[1] for row in rows},
                               dict(zip(ids, scores)))
