"""``selfpanoptic score-label-free``: scores of a semantic model that need no target labels.

Run on the target train split (never val): the model's mean confidence, entropy, share of
confident pixels and agreement with its own mirrored view, the distance of its predicted class
shares to the source labels' class shares, and the agreement of its prediction with the previous
round's (:mod:`selfpanoptic.metrics.label_free`). Written as a metrics table (task
``label_free``, class ``all``), so that the summary, the ablation table and the report carry it
next to the scores on val.
"""

from __future__ import annotations

import argparse

from .common import COMPUTE, progress, torch_setup

HELP = "label-free scores of a semantic model on the unlabelled target train split"
PARENTS = [*COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="semantic model file")
    parser.add_argument("--data", required=True, help="target train cache (HDF5); its labels are not read")
    parser.add_argument("--source", required=True, help="labelled source cache (its class shares)")
    parser.add_argument("--prediction", help="this run's semantic prediction on the same cache (with --previous)")
    parser.add_argument("--previous", help="the previous round's semantic prediction on the same cache "
                        "(round_agreement; without it the score is undefined)")
    parser.add_argument("--run", required=True, help="run name for the table (round0, round1, ..., oracle)")
    parser.add_argument("--out", required=True, help="metrics CSV to write")


def run(args: argparse.Namespace, batch_size: int = 8) -> None:
    import numpy as np
    import torch
    from tqdm import tqdm

    from ..atomic import atomic_write_text
    from ..augment.normalise import normalise
    from ..classes import NUM_CLASSES
    from ..dense import dense_predict
    from ..errors import InputError
    from ..inference import batches
    from ..intermediates import DatasetCache
    from ..metrics.label_free import LabelFreeTally
    from ..metrics.table import metric_frame
    from ..models import model_from_file
    from ._guidance import source_shares

    if args.previous and not args.prediction:
        raise InputError("--previous is compared with this run's prediction, but --prediction was not given",
                         fix="give --prediction (this run's prediction on the same cache) with --previous")
    device = torch_setup(args)
    model = model_from_file(args.model, "semantic").to(device)
    reference = source_shares(1.0, args.source).numpy()
    tally = LabelFreeTally(NUM_CLASSES)
    softmax = torch.nn.functional.softmax
    with DatasetCache.open(args.data) as cache, torch.no_grad():
        for idx in tqdm(list(batches(len(cache), batch_size)), desc="label-free scores", disable=not progress(args)):
            x = normalise(np.stack([cache.read("images", i) for i in idx])).to(device)
            probabilities = dense_predict(model, x, activation=lambda logits: softmax(logits, dim=1))
            flipped = dense_predict(model, x.flip(-1), activation=lambda logits: softmax(logits, dim=1)).flip(-1)
            tally.add(probabilities, flipped)
        image_ids = cache.image_ids
    agreement = _round_agreement(args.prediction, args.previous, image_ids, args.data) if args.previous else float("nan")
    scores = tally.scores(reference, agreement)
    table = metric_frame([(args.run, "label_free", name, "all", value) for name, value in scores.items()])
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table.to_string(index=False))


def _round_agreement(prediction: str, previous: str, image_ids, data: str) -> float:
    """Share of pixels on which two semantic predictions of the cache ``data``'s images agree."""
    from ..errors import InputError
    from ..intermediates import SemanticPrediction

    agree = total = 0
    with SemanticPrediction.open(prediction, image_ids, data) as now, \
            SemanticPrediction.open(previous, image_ids, data) as before:
        if now["labels"].shape != before["labels"].shape:
            raise InputError(f"its labels are {now['labels'].shape[1:]} pixels, the previous round's "
                             f"{before['labels'].shape[1:]} ({previous})", prediction,
                             "predict both rounds at the same size (the cache's working size)")
        for i in range(len(image_ids)):
            a, b = now["labels"][i], before["labels"][i]
            agree += int((a == b).sum())
            total += a.size
    return agree / total
