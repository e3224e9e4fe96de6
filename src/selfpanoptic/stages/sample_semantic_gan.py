"""``selfpanoptic sample-semantic-gan``: labelled samples of SemanticGAN, as a dataset and scored.

Writes ``semantic_gan.samples`` generated (image, label map) pairs as a dataset in the GTA5
layout (``images/<id>.png``, ``labels/<id>.png`` with Cityscapes labelIds; no instances), which
``datasets.gta.root`` or the index stage reads like any GTA5 folder, plus ``provenance.json``; a
grid of samples (image | label map); and their label fidelity: the oracle's (and optionally
another model's) segmentation of each sample scored against the sample's own label map.
"""

from __future__ import annotations

import argparse

from .common import COMPUTE, progress, settings, settings_parent, torch_setup

HELP = "sample labelled pairs from SemanticGAN into a GTA5-layout dataset and score their label fidelity"
PARENTS = [settings_parent("semantic_gan"), *COMPUTE]
FOLDER_OUTPUTS = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", required=True, help="generator file (train-semantic-gan)")
    parser.add_argument("--oracle-model", help="semantic model trained on target labels, which segments the samples")
    parser.add_argument("--model", help="another semantic model to score beside it (the run that taught the labels)")
    parser.add_argument("--out", required=True, help="folder of the sampled dataset to write (GTA5 layout)")
    parser.add_argument("--grid", required=True, help="PNG of samples to write: image | label map")
    parser.add_argument("--table", help="label-fidelity CSV to write (needs --oracle-model)")


def run(args: argparse.Namespace) -> None:
    import json

    import numpy as np

    from .. import __version__
    from ..atomic import atomic_output, atomic_write_text
    from ..classes import NUM_CLASSES, train_ids_to_label_ids
    from ..colours import colourise
    from ..errors import InputError
    from ..inference import predict_semantic_batch
    from ..metrics.semantic import confusion_matrix
    from ..models import model_from_file
    from ..pngio import write_png
    from ..semantic_gan import load_generator, sample_fidelity_table, sample_pairs
    from ..translation import sample_grid

    section = settings(args, "semantic_gan")
    if args.table and not args.oracle_model:
        raise InputError("--table asks for the samples' label fidelity, which the oracle's segmentation measures, "
                         "and no --oracle-model was given", fix="pass --oracle-model (results/oracle/semantic/model.pt)")
    device = torch_setup(args)
    generator, saved = load_generator(args.generator)
    generator = generator.to(device)
    models = {name: model_from_file(path, "semantic").to(device)
              for name, path in (("oracle", args.oracle_model), ("model", args.model)) if path}
    images, labels = sample_pairs(generator, section["samples"], section["truncation"],
                                  section["train"]["seed"], device)
    confusions = {name: np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64) for name in models}
    with atomic_output(args.out) as tmp:
        (tmp / "images").mkdir(parents=True)
        (tmp / "labels").mkdir()
        for i, (image, label) in enumerate(zip(images, labels)):
            write_png(tmp / "images" / f"{i:05d}.png", image)
            write_png(tmp / "labels" / f"{i:05d}.png", train_ids_to_label_ids(label))
        for idx in progress_batches(len(images), progress(args)):
            for name, model in models.items():
                predicted, _ = predict_semantic_batch(model, images[idx.start: idx.stop], device)
                for k, i in enumerate(idx):
                    confusions[name] += confusion_matrix(labels[i], predicted[k])
        (tmp / "provenance.json").write_text(json.dumps({
            "what": "labelled samples of a SemanticGAN generator (label maps: the label branch's argmax)",
            "generator": str(args.generator), "pairs": saved.get("pairs"), "samples": int(len(images)),
            "truncation": section["truncation"], "seed": section["train"]["seed"],
            "size": saved["working_size"], "selfpanoptic": __version__}, indent=2) + "\n")
    picks = np.linspace(0, len(images) - 1, num=min(section["grid"], len(images))).astype(int)
    with atomic_output(args.grid) as tmp:
        write_png(tmp, sample_grid([[images[i], colourise(labels[i])] for i in picks]))
    message = f"sampled {len(images)} labelled pairs -> {args.out}, {args.grid}"
    if args.table:
        table = sample_fidelity_table(confusions["oracle"], confusions.get("model"))
        atomic_write_text(args.table, table.to_csv(index=False))
        mean = table.set_index("class").loc["mean"]
        message += f"; label fidelity mIoU {mean.oracle_iou:.1f} under the oracle -> {args.table}"
    print(message)


def progress_batches(count: int, show: bool):
    from tqdm import tqdm

    from ..inference import batches

    return tqdm(list(batches(count, 32)), desc="label fidelity", disable=not show, unit="batch")
