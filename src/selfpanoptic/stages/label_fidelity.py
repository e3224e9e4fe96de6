"""``selfpanoptic label-fidelity``: segment the translated source and score it against its label maps.

The labelling round's semantic model segments every source image twice, real and translated;
each is scored against the source label map (the one the translated image was generated from).
With ``--oracle-model`` the target-trained model segments the translations too. Writes the
per-class table (:func:`~selfpanoptic.translation.fidelity_table`) and a grid a person
reads: label map | real source image | translated image | re-segmentation of the translated image.
"""

from __future__ import annotations

import argparse

from .common import COMPUTE, progress, settings, settings_parent, torch_setup

HELP = "score the translated source: re-segment it and compare with the label maps it came from"
PARENTS = [settings_parent("translation"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="semantic model file of the round the translator's labels came from")
    parser.add_argument("--oracle-model", help="semantic model trained on target labels (the oracle's), which also "
                        "segments the translations: a target-trained model reads target-like images best")
    parser.add_argument("--source", required=True, help="source cache (HDF5)")
    parser.add_argument("--translated", required=True, help="translated source cache (HDF5), same images in the same order")
    parser.add_argument("--out", required=True, help="fidelity table CSV to write")
    parser.add_argument("--grid", required=True, help="PNG grid of translated samples to write")


def run(args: argparse.Namespace) -> None:
    import numpy as np
    from tqdm import tqdm

    from ..atomic import atomic_output, atomic_write_text
    from ..colours import colourise
    from ..inference import batches, predict_semantic_batch
    from ..intermediates import DatasetCache
    from ..metrics.semantic import SemanticEvaluator
    from ..models import model_from_file
    from ..pngio import write_png
    from ..translation import fidelity_table, sample_grid

    section = settings(args, "translation")
    device = torch_setup(args)
    model = model_from_file(args.model, "semantic").to(device)
    oracle_model = model_from_file(args.oracle_model, "semantic").to(device) if args.oracle_model else None
    with DatasetCache.open(args.source) as source, DatasetCache.open(
            args.translated, source.image_ids, args.source,
            "rebuild the translated cache (rerun translate_source and cache_dataset)") as translated:
        real, fake = SemanticEvaluator(), SemanticEvaluator()
        oracle = SemanticEvaluator() if oracle_model is not None else None
        picks = set(np.linspace(0, len(source) - 1, num=min(section["samples"], len(source))).astype(int).tolist())
        rows = []
        for idx in tqdm(list(batches(len(source), section["batch_size"])), desc="label fidelity",
                        disable=not progress(args), unit="batch"):
            labels = np.stack([source.read("labels", i) for i in idx])
            images = np.stack([source.read("images", i) for i in idx])
            rendered = np.stack([translated.read("images", i) for i in idx])
            predicted_real, _ = predict_semantic_batch(model, images, device)
            predicted_fake, _ = predict_semantic_batch(model, rendered, device)
            if oracle_model is not None:
                predicted_oracle, _ = predict_semantic_batch(oracle_model, rendered, device)
            for k, i in enumerate(idx):
                real.add(labels[k], predicted_real[k])
                fake.add(labels[k], predicted_fake[k])
                if oracle is not None:
                    oracle.add(labels[k], predicted_oracle[k])
                if i in picks:
                    rows.append([colourise(labels[k]), images[k], rendered[k], colourise(predicted_fake[k])])
    table = fidelity_table(real.confusion, fake.confusion, oracle.confusion if oracle is not None else None)
    atomic_write_text(args.out, table.to_csv(index=False))
    with atomic_output(args.grid) as tmp:
        write_png(tmp, sample_grid(rows))
    mean = table.set_index("class").loc["mean"]
    print(f"label fidelity: mIoU {mean.translated_iou:.1f} on translated vs {mean.real_iou:.1f} on real source images "
          f"({mean.ratio:.0f} %)" + (f"; the oracle's {mean.oracle_translated_iou:.1f} on translated" if oracle is not None
                                     else "") + f" -> {args.out}, {args.grid}")
