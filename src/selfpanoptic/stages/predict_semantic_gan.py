"""``selfpanoptic predict-semantic-gan``: read labels out of a cache's images with SemanticGAN.

Each image is encoded into W+ and, with ``semantic_gan.inversion.steps`` > 0 (or ``--steps``),
W+ and the noise maps are optimised until the generator redraws the image; the label branch's
softmax, upsampled bilinearly to the output size, gives labels and confidence. Writes an ordinary
semantic prediction, so every rule that reads one (scores, exports, panoptic fusion) reads it.
"""

from __future__ import annotations

import argparse

from ._full_resolution import add_full_resolution, output_size
from .common import COMPUTE, progress, settings, settings_parent, torch_setup

HELP = "semantic labels of every image of a cache, read out by SemanticGAN's encoder and inversion"
PARENTS = [settings_parent("semantic_gan"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", required=True, help="generator file (train-semantic-gan)")
    parser.add_argument("--encoder", help="encoder file (train-gan-encoder), trained against that generator")
    parser.add_argument("--data", required=True, help="dataset cache (HDF5)")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="inversion steps (default semantic_gan.inversion.steps; 0: the encoder's readout alone)")
    add_full_resolution(parser)
    parser.add_argument("--out", required=True, help="prediction HDF5 to write")
    parser.add_argument("--grid", help="PNG to write: image | reconstruction | readout | ground truth, "
                        "for semantic_gan.grid images spread over the cache")


def run(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from ..atomic import atomic_output
    from ..colours import colourise
    from ..errors import InputError
    from ..inference import batches
    from ..intermediates import DatasetCache, SemanticPrediction
    from ..inversion import invert
    from ..pngio import write_png
    from ..semantic_gan import load_encoder, load_generator, to_uint8_images
    from ..gan_settings import InversionSettings
    from ..train.semantic_gan import signed_images
    from ..translation import sample_grid

    section = settings(args, "semantic_gan")
    inversion = InversionSettings.from_config(section)
    steps = inversion.steps if args.steps is None else args.steps
    if steps < 0:
        raise InputError(f"--steps must be 0 or more, not {steps}", fix="give --steps 0 (the encoder alone) or more")
    device = torch_setup(args)
    with DatasetCache.open(args.data) as cache:
        generator, saved = load_generator(args.generator, (cache.height, cache.width))
        encoder = load_encoder(args.encoder, saved, args.generator)
        generator, encoder = generator.to(device), encoder.to(device)
        size = output_size(args, cache)
        picks = set(np.linspace(0, len(cache) - 1, num=min(section["grid"], len(cache))).astype(int).tolist())
        rows, errors = [], []
        config = {"generator": str(args.generator), "encoder": str(args.encoder), "steps": steps,
                  "inversion": section["inversion"]}
        inputs = [args.generator, args.encoder, args.data] + ([args.full_resolution] if args.full_resolution else [])
        with SemanticPrediction.create(args.out, cache.image_ids, size, config, inputs) as h5:
            for idx in tqdm(list(batches(len(cache), inversion.batch_size)), desc=f"invert ({steps} steps)",
                            disable=not progress(args), unit="batch"):
                images = np.stack([cache.read("images", i) for i in idx])
                result = invert(generator, encoder, signed_images(images).to(device), inversion, steps)
                with torch.no_grad():
                    prob = torch.softmax(result.logits.float(), dim=1)
                    if tuple(prob.shape[-2:]) != tuple(size):
                        prob = F.interpolate(prob, size=size, mode="bilinear", align_corners=False)
                    confidence, labels = prob.max(dim=1)
                h5["labels"][idx.start: idx.stop] = labels.cpu().numpy().astype(np.uint8)
                h5["confidence"][idx.start: idx.stop] = confidence.cpu().numpy().astype(np.float16)
                errors.append(result.error.cpu().numpy())
                readout = result.logits.argmax(1).cpu().numpy()
                redrawn = to_uint8_images(result.images)
                for k, i in enumerate(idx):
                    if i in picks:
                        rows.append([images[k], redrawn[k], colourise(readout[k]), colourise(cache.read("labels", i))])
    if args.grid:
        with atomic_output(args.grid) as tmp:
            write_png(tmp, sample_grid(rows))
    print(f"read out {len(cache)} images ({steps} inversion steps): mean reconstruction error "
          f"{float(np.concatenate(errors).mean()):.4f} -> {args.out}" + (f", {args.grid}" if args.grid else ""))
