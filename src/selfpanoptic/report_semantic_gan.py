"""The report's SemanticGAN section: its readouts beside the run that taught it, the label fidelity
of its samples, and the grids of samples and inversions."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .errors import InputError

__all__ = ["semantic_gan_lines"]

_FIDELITY_COLUMNS = ["class", "pixels", "oracle_iou", "model_iou"]


def _readout_rows(table: pd.DataFrame) -> list[str]:
    """One row per run of the metrics table with a semantic mIoU (19 classes, SYNTHIA's 13)."""
    scores = table[(table["task"] == "semantic") & (table["metric"] == "mIoU")]
    lines = ["| run | mIoU | mIoU13 |", "|---|---:|---:|"]
    for run in ("round0", "translated", "gan_samples", "gan_encoder", "gan_inversion", "oracle"):
        rows = scores[scores["run"] == run].set_index("class")["value"]
        if not rows.empty:
            cells = [f"{rows[c]:.1f}" if c in rows else "–" for c in ("all", "all13")]
            lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return lines


def semantic_gan_lines(table: pd.DataFrame, samples: str, inversions: str, fidelity: str | None,
                       out_dir: Path) -> list[str]:
    """The section's Markdown lines. ``table``: the metrics table; ``samples``, ``inversions``: the
    grids (PNG); ``fidelity``: the samples' label-fidelity CSV (``sample-semantic-gan --table``) or
    None; paths are checked and linked relative to ``out_dir``."""
    for path in [samples, inversions] + ([fidelity] if fidelity else []):
        if not Path(path).is_file():
            raise InputError("SemanticGAN output does not exist", path,
                             "run the sample_semantic_gan and predict_semantic_gan rules that write it")
    lines = [
        "## SemanticGAN", "",
        "A generator of images and their label maps (section `semantic_gan`), an encoder into its styles, and "
        "a readout of any image's labels: `gan_encoder` reads them from the encoder's styles alone, "
        "`gan_inversion` after optimising the styles until the generator redraws the image "
        "(docs/related-work.md, \"SemanticGAN\"). `gan_samples`, where present, is round 0's semantic model "
        "trained with a share of its source draws taken from the generator's samples (`semantic_gan.source_share`).", "",
        *_readout_rows(table), "",
    ]
    if fidelity:
        frame = pd.read_csv(fidelity)
        if list(frame.columns) != _FIDELITY_COLUMNS:
            raise InputError("not a SemanticGAN label-fidelity table", fidelity,
                             "give the CSV that sample-semantic-gan --table writes")
        mean = frame.set_index("class").loc["mean"]
        drawn = frame[(frame["class"] != "mean") & (frame["pixels"] > 0)]
        lines += [f"Label fidelity of the samples: the oracle's segmentation of them scores **{mean.oracle_iou:.1f} "
                  f"mIoU** over the {len(drawn)} classes the samples draw, against their own label maps (the "
                  f"labelling run's model: {mean.model_iou:.1f}). Classes the generator never draws are not in "
                  "the mean: read it with the class shares below.", "",
                  "<details><summary>Per class</summary>", "",
                  "| class | share of pixels % | oracle's IoU | labelling run's IoU |", "|---|---:|---:|---:|",
                  *(f"| {r['class']} | {r.pixels:.1f} | {r.oracle_iou:.1f} | {r.model_iou:.1f} |"
                    for _, r in drawn.iterrows()), "", "</details>", ""]
    return lines + [
        "Samples (image | label map):", "", f"![SemanticGAN samples]({os.path.relpath(samples, out_dir)})", "",
        "Inversions of target val images (image | reconstruction | readout | ground truth):", "",
        f"![SemanticGAN inversions]({os.path.relpath(inversions, out_dir)})", "",
    ]
