"""Predictions drawn for a person to look at: panoptic and semantic colours and overlays.

Shared by ``predict-panoptic`` (an overlay per image) and the report (its overlay grids); kept
apart from :mod:`selfpanoptic.report` so that predicting does not import matplotlib.
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import id2label

from .colours import colourise
from .formats.cityscapes_ids import decode_instance_ids

__all__ = ["colourise_panoptic", "instance_borders", "panoptic_overlay", "semantic_overlay"]


def instance_borders(ids: np.ndarray) -> np.ndarray:
    """Where one thing segment meets another segment: bool ``(H, W)`` of Cityscapes panoptic ids ``(H, W)``.

    A thing pixel (id >= 1000) whose left or upper neighbour has another id is a border pixel,
    so each boundary is one pixel wide and lies on the thing's side.
    """
    things = decode_instance_ids(ids)[1] >= 0
    border = np.zeros(ids.shape, dtype=bool)
    border[:, 1:] |= (ids[:, 1:] != ids[:, :-1]) & things[:, 1:]
    border[1:, :] |= (ids[1:, :] != ids[:-1, :]) & things[1:, :]
    return border


def colourise_panoptic(ids: np.ndarray) -> np.ndarray:
    """(H, W) Cityscapes panoptic ids -> colours: stuff in its class colour, each thing instance
    in its class colour shifted by a per-instance offset, instance borders white, void black."""
    label_ids, k = decode_instance_ids(ids)
    table = np.zeros((256, 3), dtype=np.int32)
    for label_id, label in id2label.items():
        if 0 <= label_id < 256:
            table[label_id] = label.color
    out = table[np.clip(label_ids, 0, 255)]
    things = k >= 0
    shift = (k * 47 % 97 - 48)[..., None]  # only used on things
    out = np.where(things[..., None], np.clip(out + shift, 0, 255), out)
    out[instance_borders(ids)] = 255
    return out.astype(np.uint8)


def _blend(image: np.ndarray, colours: np.ndarray, painted: np.ndarray, alpha: float) -> np.ndarray:
    """``image`` with ``colours`` mixed in at weight ``alpha`` where ``painted``; elsewhere unchanged."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    image = np.asarray(image)
    if image.shape != colours.shape:
        raise ValueError(f"image of shape {image.shape} for a map of shape {colours.shape[:2]}")
    mixed = np.rint((1.0 - alpha) * image + alpha * colours.astype(np.float64))
    return np.where(painted[..., None], mixed, image).astype(np.uint8)


def panoptic_overlay(image: np.ndarray, ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A panoptic prediction drawn over its image, for a person to look at.

    Parameters
    ----------
    image : numpy.ndarray of uint8, shape (H, W, 3)
        The RGB image.
    ids : numpy.ndarray of int, shape (H, W)
        Its Cityscapes panoptic ids (0 void, labelId, labelId * 1000 + k).
    alpha : float
        Weight of the segment colours (:func:`colourise_panoptic`) in the mix, 0..1.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
        ``(1 - alpha) * image + alpha * colour`` (rounded) on every non-void pixel, the image
        itself on void pixels, and opaque white on instance borders (:func:`instance_borders`),
        so that touching instances of one class stay apart whatever ``alpha``.
    """
    ids = np.asarray(ids)
    out = _blend(image, colourise_panoptic(ids), ids != 0, alpha)
    out[instance_borders(ids)] = 255
    return out


def semantic_overlay(image: np.ndarray, train_ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A semantic prediction drawn over its image (a run without instance models).

    Parameters
    ----------
    image : numpy.ndarray of uint8, shape (H, W, 3)
        The RGB image.
    train_ids : numpy.ndarray of uint8, shape (H, W)
        Its predicted trainIds, 255 = none.
    alpha : float
        Weight of the class colours (:func:`selfpanoptic.colours.colourise`), 0..1.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
        ``(1 - alpha) * image + alpha * colour`` (rounded) where a class is predicted, the
        image itself where ``train_ids`` is 255.
    """
    train_ids = np.asarray(train_ids)
    return _blend(image, colourise(train_ids), train_ids != 255, alpha)
