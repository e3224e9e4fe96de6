"""A model's dense output on an image batch under the ``inference`` settings: whole or sliding
window, multi-scale and horizontal-flip test-time augmentation, at a requested output size.

One function, :func:`dense_predict`, as MMSegmentation's ``slide_inference`` / ``aug_test``:

- ``mode: slide``: windows of ``crop`` pixels every ``stride`` pixels; the last window of each
  row and column is moved back to end at the image edge, so every pixel is covered without
  padding. Overlapping window outputs are averaged (sum / number of windows). An image smaller
  than the crop in a dimension is taken whole in that dimension (the window shrinks to it): no
  padding, so the model never sees pixels that are not in the image.
- ``scales``: the image is resized bilinearly to ``round(H * s), round(W * s)`` (Python's round)
  for each scale; ``flip``: each scale also runs on the left-right mirrored image, whose output
  is mirrored back.
- each (scale, flip) pass's output goes through ``activation`` (softmax for class scores: the
  probabilities are what is averaged), is resized bilinearly to the output size, and the passes
  are averaged. Class scores are thus upsampled before any argmax.

With no settings (or whole, scales [1.0], no flip) and the output size equal to the input's, the
result is exactly ``activation(model(x).float())``: one forward pass, bit for bit.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .settings import InferenceSettings

Model = Callable[[torch.Tensor], torch.Tensor]
"""``model(x (B, 3, h, w) float) -> (B, C, h', w')``; an output at another resolution than its
input is resized bilinearly to the input's (the models of this package already return it)."""


def dense_predict(
    model: Model, x: torch.Tensor, settings: InferenceSettings | None = None,
    size: tuple[int, int] | None = None, activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The model's output on ``x`` averaged over the passes of ``settings``, at ``size``.

    Parameters
    ----------
    model
        Called on float ``(B, 3, h, w)`` tensors (whole images or windows), returns
        ``(B, C, h, w)``; its output is taken as float32. Run it in eval mode under
        ``torch.no_grad`` (the caller's job). In slide mode it is called once per window
        position with the whole batch, so memory grows with ``B`` and ``crop``, as in training.
    x
        Normalised images, float ``(B, 3, H, W)``, on the model's device.
    settings
        :class:`~selfpanoptic.settings.InferenceSettings`: ``mode`` (``"whole"`` | ``"slide"``),
        ``crop`` and ``stride`` (``(h, w)`` pixels; the same windows at every scale, as in
        MMSegmentation), ``scales`` (floats > 0, relative to ``H, W``), ``flip`` (bool). None:
        one whole pass at scale 1, no flip.
    size
        ``(H_out, W_out)`` of the result; None: ``(H, W)``.
    activation
        Applied to each pass's (blended) output, ``(B, C, h, w) -> (B, C', h, w)``, before
        resizing and averaging: e.g. ``partial(torch.softmax, dim=1)`` for class logits, None
        (identity) for embeddings.

    Returns
    -------
    torch.Tensor
        float32 ``(B, C', H_out, W_out)`` on ``x``'s device: the mean over the passes (scales
        x flips) of the activated outputs, each resized bilinearly (align_corners=False).
    """
    settings = InferenceSettings() if settings is None else settings
    mode = settings.mode
    if mode not in ("whole", "slide"):
        raise ValueError(f"inference mode must be 'whole' or 'slide', not {mode!r}")
    height, width = x.shape[-2:]
    size = (height, width) if size is None else tuple(size)
    total, passes = None, 0
    for scale in settings.scales:
        scaled = (round(height * scale), round(width * scale))
        if min(scaled) < 1:
            raise ValueError(f"inference scale {scale} makes the {height}x{width} image empty")
        xs = x if scaled == (height, width) else _resize(x, scaled)
        for flipped in (False, True) if settings.flip else (False,):
            xf = xs.flip(-1) if flipped else xs
            out = _slide(model, xf, settings.crop, settings.stride) if mode == "slide" else _forward(model, xf)
            if flipped:
                out = out.flip(-1)
            if activation is not None:
                out = activation(out)
            if out.shape[-2:] != size:
                out = _resize(out, size)
            total = out if total is None else total + out
            passes += 1
    # one pass: returned as it is (no division), so the default is bit-identical to a plain forward
    return total if passes == 1 else total / passes


def _resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def _forward(model: Model, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` as float32 at ``x``'s resolution."""
    out = model(x).float()
    return out if out.shape[-2:] == x.shape[-2:] else _resize(out, tuple(x.shape[-2:]))


def _window_starts(length: int, crop: int, stride: int) -> list[int]:
    """First pixels of the windows along one dimension of ``length`` pixels.

    Windows of ``min(crop, length)`` pixels every ``stride`` pixels, the last one ending at the
    edge (MMSegmentation's grid): ``length=6, crop=3, stride=2`` -> ``[0, 2, 3]``. With
    ``stride <= crop`` every pixel is in at least one window, and no start repeats.
    """
    crop = min(crop, length)
    count = max(length - crop + stride - 1, 0) // stride + 1
    return [min(i * stride, length - crop) for i in range(count)]


def _slide(model: Model, x: torch.Tensor, crop: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Sliding-window output, float32 ``(B, C, H, W)``: each pixel the mean over its windows."""
    height, width = x.shape[-2:]
    ch, cw = min(crop[0], height), min(crop[1], width)
    total = None
    count = torch.zeros((1, 1, height, width), dtype=torch.float32, device=x.device)
    for top in _window_starts(height, crop[0], stride[0]):
        for left in _window_starts(width, crop[1], stride[1]):
            out = _forward(model, x[:, :, top:top + ch, left:left + cw])
            if total is None:
                total = out.new_zeros((x.shape[0], out.shape[1], height, width))
            total[:, :, top:top + ch, left:left + cw] += out
            count[:, :, top:top + ch, left:left + cw] += 1
    return total / count
