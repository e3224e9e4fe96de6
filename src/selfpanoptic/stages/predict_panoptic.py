"""``selfpanoptic predict-panoptic``: a trained run's predictions on any folder of images.

``--run`` is a run folder (``results/round2``, ``results/oracle``, ...): its
``semantic/model.pt`` and every ``instance/<group>/model.pt``. Every ``*.png``, ``*.jpg`` and
``*.jpeg`` below ``--images`` is an image; its id is its path relative to the folder without
the extension (subfolders kept, whitespace made ``_``). Each image is resized to the working
resolution (``data.height`` x ``data.width``, bilinear, as the cache stores images) and
predicted at its own size as the workflow predicts the val split: class probabilities and
embeddings are upsampled bilinearly to it (``inference`` settings), ``instance.clustering.min_size``
is scaled by the ratio of the areas, and the instances are cleaned and fused as ``fuse-panoptic``
does (``panoptic`` settings). Written to ``--out``, which appears only when complete:

- ``semantic/labelIds/<id>.png`` (Cityscapes labelIds) and ``semantic/colour/<id>.png``;
- ``instance/<id>.txt`` and ``instance/<folder of id>/masks/*.png`` (the official instance
  format, instances before clean-up, as ``export-instance`` writes them);
- ``panoptic/<id>_panoptic.png`` and ``panoptic.json`` (COCO panoptic: images, annotations,
  the Cityscapes categories);
- ``overlays/<id>.png``: the image with the panoptic segments drawn over it.

A run without instance models (a semantic-only GTA5 run) gets the semantic files and
overlays of the semantic prediction only.
"""

from __future__ import annotations

import argparse

from .common import COMPUTE, progress, settings, settings_parent, torch_setup

HELP = "a trained run's semantic, instance and panoptic predictions on a folder of images"
PARENTS = [settings_parent("data", "inference", "instance", "panoptic"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="DIR",
                        help="run folder holding semantic/model.pt and instance/<group>/model.pt (results/round2)")
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of images (*.png, *.jpg, *.jpeg, searched recursively)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (semantic/, instance/, panoptic/, panoptic.json, overlays/)")


def run(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from ..atomic import atomic_output
    from ..data.base import resize_image
    from ..data.image_folder import image_folder
    from ..errors import InputError
    from ..formats.cityscapes_ids import cityscapes_categories
    from ..formats.instance_files import write_instance_prediction
    from ..formats.panoptic_png import write_panoptic_prediction
    from ..formats.semantic_png import write_semantic_prediction
    from ..fusion import clean_instance_masks, fuse_panoptic
    from ..inference import image_instances, predict_semantic_batch
    from ..models import model_from_file
    from ..pngio import image_size, read_rgb, write_png
    from ..report import panoptic_overlay, semantic_overlay
    from ._instances import load_instance_groups, prediction_clustering

    data, inference = settings(args, "data"), settings(args, "inference")
    instance, panoptic = settings(args, "instance"), settings(args, "panoptic")
    working = (data["height"], data["width"])
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise InputError("run folder does not exist", run_dir,
                         "give a folder the workflow trained, e.g. results/round2 (semantic/model.pt inside)")
    images = image_folder(args.images, exclude=args.out)
    for _, path in images:  # an unreadable image stops the command before any model work
        image_size(path)

    device = torch_setup(args)
    semantic_model = model_from_file(run_dir / "semantic" / "model.pt", "semantic").to(device)
    groups = load_instance_groups(sorted(run_dir.glob("instance/*/model.pt")), device)
    if not groups:
        print(f"{run_dir}: no instance models (instance/<group>/model.pt): semantic predictions only", flush=True)

    found, annotations, image_entries = 0, [], []
    morphology = panoptic["morphology"]
    with atomic_output(args.out) as out:
        out.mkdir()
        for image_id, path in tqdm(images, desc="predict panoptic", disable=not progress(args)):
            image = read_rgb(path)
            size = image.shape[:2]
            batch = resize_image(image, working)[None]
            labels, confidence = predict_semantic_batch(semantic_model, batch, device, inference, size)
            write_semantic_prediction(out / "semantic" / "labelIds" / f"{image_id}.png", labels[0],
                                      out / "semantic" / "colour" / f"{image_id}.png")
            overlay = out / "overlays" / f"{image_id}.png"
            overlay.parent.mkdir(parents=True, exist_ok=True)
            if not groups:
                write_png(overlay, semantic_overlay(image, labels[0]))
                continue
            cluster = prediction_clustering(instance, device, size[0] * size[1] / (working[0] * working[1]))
            instances, rows, scores = next(image_instances(groups, batch, labels, confidence, cluster, device,
                                                           inference, size))
            found += len(rows)
            # the official formats need a plain file-name prefix: a subfolder of the id is a subfolder here
            folder, name = Path(image_id).parent, Path(image_id).name
            write_instance_prediction(out / "instance" / folder, name, instances,
                                      {row[0]: row[1] for row in rows}, dict(zip((row[0] for row in rows), scores)))
            if morphology["enabled"]:
                instances = clean_instance_masks(instances, morphology["opening_radius"],
                                                 morphology["closing_radius"], morphology["min_size"])
            ids, segments = fuse_panoptic(labels[0], instances, panoptic["stuff_min_area"])
            annotation = write_panoptic_prediction(out / "panoptic" / folder, name, ids, segments)
            annotations.append(dict(annotation, image_id=image_id,
                                    file_name=(folder / annotation["file_name"]).as_posix()))
            image_entries.append({"id": image_id, "file_name": path.relative_to(args.images).as_posix(),
                                  "height": int(size[0]), "width": int(size[1])})
            write_png(overlay, panoptic_overlay(image, np.asarray(ids)))
        if groups:
            prediction = {"images": image_entries, "annotations": annotations, "categories": cityscapes_categories()}
            (out / "panoptic.json").write_text(json.dumps(prediction))
    what = f"{found} instances, " if groups else "semantic only, "
    print(f"predict-panoptic: {len(images)} images, {what}predictions -> {args.out} "
          f"({'semantic/, instance/, panoptic/, panoptic.json, overlays/' if groups else 'semantic/, overlays/'})")
