"""``selfpanoptic pseudo-semantic``: the semantic pseudo-labels a round starts from, on every target train image.

What the file is: the round-start snapshot. :func:`selfpanoptic.pseudo.semantic.make_pseudo_labels`,
the function the training step calls on every batch, applied once to every whole image with the
round's initial teacher (round r-1's model), views drawn from ``(train.seed, image index)`` and
the split's class prior (the mean fused softmax over all images). Training reads only that prior
from the file (it seeds the moving prior); during the round the teacher and the prior move and the
crops are random, so the labels the student sees drift from this snapshot. The audit grades the
snapshot: how good the labels are that the round starts from.

One forward pass: the labels need the prior of the whole split, so while the prior is summed
every image's fused softmax goes to a scratch file beside the output
(:mod:`selfpanoptic.pseudo.fused_store`: ``C x 4 + 1`` bytes a pixel with ``alignment`` > 0, else
6; deleted at the end), and the labels are made from it afterwards by
:func:`~selfpanoptic.pseudo.semantic.labels_from_fused` (the steps of ``make_pseudo_labels`` after
the fusion) instead of forwarding every view again: bit-identical to a second forward, at half the
teacher's work.
"""

from __future__ import annotations

import argparse

from ._guidance import add_guidance_io, load_guidance, source_shares
from .common import COMPUTE, progress, selftrain_settings, settings_parent, torch_setup

HELP = "a round's semantic pseudo-labels on the target train images (round-start snapshot, for the audit and the prior)"
PARENTS = [settings_parent("selftrain"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the previous round's semantic model file (the initial teacher)")
    parser.add_argument("--data", required=True, help="target train cache (HDF5); its labels are not used")
    parser.add_argument("--round", required=True, type=int, help="round whose pseudo-labels these are (1, 2, ...)")
    add_guidance_io(parser)
    parser.add_argument("--source", help="labelled source cache: its class shares, when selftrain.semantic.alignment > 0")
    parser.add_argument("--out", required=True, help="pseudo-label HDF5 to write")


def run(args: argparse.Namespace, batch_size: int = 8) -> None:
    import contextlib

    import numpy as np
    import torch

    from ..augment.normalise import to_unit
    from ..augment.views import random_view_affines
    from ..classes import NUM_CLASSES
    from ..config import guidance_mode
    from ..intermediates import DatasetCache, SemanticPseudoLabels
    from ..models import model_from_file
    from ..pseudo.fused_store import FusedStore
    from ..settings import GuidanceSettings, SelfSemanticSettings

    device = torch_setup(args)
    section = selftrain_settings(args)
    sem, guidance = SelfSemanticSettings.from_config(section["semantic"]), section["guidance"]
    seed, views = sem.train.seed, sem.views
    teacher = model_from_file(args.model, "semantic").to(device)
    reference = source_shares(sem.pseudo.alignment, args.source)
    with contextlib.ExitStack() as stack:  # the guiding instances are read per batch from their open file
        cache = stack.enter_context(DatasetCache.open(args.data))
        guide = load_guidance(guidance, args.round, cache, args.guidance_instances, seed, stack)
        n, shape = len(cache), (cache.height, cache.width)

        def batch(idx: range):
            images = to_unit(np.stack([cache.read("images", i) for i in idx])).to(device)
            affines = torch.cat([random_view_affines(1, views.views, np.random.default_rng([seed, i]), views.min_scale,
                                                     views.max_scale, views.flip_p) for i in idx])
            return images, affines

        store = stack.enter_context(FusedStore.create(args.out, n, NUM_CLASSES, shape, sem.pseudo.alignment > 0))
        prior = _fuse_split(teacher, batch, store, n, shape, batch_size, progress(args))
        stacks = ["labels", "argmax", "confidence"] + (["labels_before_guidance"] if guide is not None else [])
        inputs = [args.model, args.data] + ([args.guidance_instances] if args.guidance_instances else [])
        with SemanticPseudoLabels.create(args.out, cache.image_ids, shape, section, inputs, stacks=stacks,
                                         round=args.round, guidance=guidance_mode(guidance, args.round)) as h5:
            kept = _write_pseudo_labels(h5, store, prior, device, sem.pseudo, guide,
                                        GuidanceSettings.from_config(guidance), reference, batch_size, progress(args))
    print(f"pseudo-labels of round {args.round}: {n} images, {kept / (n * shape[0] * shape[1]):.1%} of pixels kept "
          f"-> {args.out}")


def _fuse_split(teacher, batch, store, n: int, shape: tuple[int, int], batch_size: int, show: bool):
    """The one forward pass: every image's views fused and kept in ``store``
    (:class:`~selfpanoptic.pseudo.fused_store.FusedStore`); returns the split's class prior ``(C,)``
    float32, the mean fused teacher softmax over all ``n`` images of ``shape`` pixels (summed in
    float64 from the float32 maps, before any rounding of the store). ``batch(idx) -> (images, affines)``."""
    import torch
    from tqdm import tqdm

    from ..augment.views import warp_to_reference
    from ..classes import NUM_CLASSES
    from ..inference import batches
    from ..pseudo.semantic import teacher_views

    prob_sum = torch.zeros(NUM_CLASSES, dtype=torch.float64)
    for idx in tqdm(list(batches(n, batch_size)), desc="teacher views", disable=not show):
        images, affines = batch(idx)
        fused, coverage = warp_to_reference(teacher_views(teacher, images, affines)[1], affines)
        prob_sum += fused.double().sum(dim=(0, 2, 3)).cpu()
        store.write(slice(idx.start, idx.stop), fused, coverage > 0)
        del images, affines, fused, coverage  # not held while the next batch is made: one batch in memory at a time
    return (prob_sum / (n * shape[0] * shape[1])).float()


def _write_pseudo_labels(h5, store, prior, device, settings, guide, rules, reference, batch_size: int,
                         show: bool) -> int:
    """The pseudo-labels of every image into the open file ``h5`` (its ``image_ids``), made from
    the fused maps in ``store`` as in training (``settings``:
    :class:`~selfpanoptic.settings.PseudoLabelSettings`; ``guide`` and ``rules``: the guidance),
    with the per-image class thresholds and the split's ``prior`` ``(C,)``; returns the number of
    kept (not ignored) pixels."""
    import numpy as np
    from tqdm import tqdm

    from ..classes import IGNORE, NUM_CLASSES
    from ..inference import batches
    from ..pseudo.semantic import labels_from_fused

    n = len(h5["labels"])
    thresholds = np.zeros((n, NUM_CLASSES), dtype=np.float32)
    kept = 0
    for idx in tqdm(list(batches(n, batch_size)), desc="pseudo-labels", disable=not show):
        rows = slice(idx.start, idx.stop)
        made = labels_from_fused(*store.read(rows, device), prior.to(device), settings,
                                 guide[rows] if guide is not None else None, rules, reference)
        labels = made.labels.cpu().numpy().astype(np.uint8)
        h5["labels"][rows] = labels
        h5["argmax"][rows] = made.argmax.cpu().numpy().astype(np.uint8)
        h5["confidence"][rows] = made.confidence.cpu().numpy()
        if guide is not None:
            h5["labels_before_guidance"][rows] = made.labels_before_guidance.cpu().numpy().astype(np.uint8)
        thresholds[rows] = made.thresholds.cpu().numpy()
        kept += int((labels != IGNORE).sum())
        del made, labels  # the batch's maps must not live on while the next batch is read
    h5.create_dataset("thresholds", data=thresholds).attrs["description"] = "class thresholds per image"
    h5.create_dataset("prior", data=prior.numpy()).attrs["description"] = "mean fused softmax per class over the split"
    return kept
