"""Per-domain toy sizes and gta frames of varying size, on small images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from selfpanoptic.config import validate_config
from selfpanoptic.data import open_dataset
from selfpanoptic.errors import InputError
from selfpanoptic.toy.domains import DOMAIN_SEEDS, MARKER, ImageJob, generate_image, image_jobs, synthesize_toy_domains
from selfpanoptic.toy.sizes import domain_size, frame_size, recorded_settings

BASE = {"enabled": True, "seed": 3, "height": 32, "width": 64, "synthia_images": 2, "gta_images": 6,
        "gta_truck_and_train_fraction": 0.5, "target_train_images": 2, "target_val_images": 2}
SIZED = {**BASE, "synthia_size": [38, 64], "gta_size": [52, 96], "target_size": [32, 96], "gta_size_jitter": 0.2}


def _roots(folder):
    return {name: folder / name for name in ("synthia", "gta", "target")}


def _size(path):
    with Image.open(path) as image:
        return image.height, image.width


def test_schema_defaults_keep_one_size_for_every_domain():
    toy = validate_config({})["toy"]
    assert (toy["synthia_size"], toy["gta_size"], toy["target_size"], toy["gta_size_jitter"]) == (None, None, None, 0.0)
    for domain in ("synthia", "gta", "target"):
        assert domain_size(toy, domain) == (128, 256)
        assert frame_size(toy, domain, 7, 0, DOMAIN_SEEDS[domain]) == (128, 256)


@pytest.mark.parametrize("toy", [{"gta_size": [20, 64]}, {"target_size": [64]}, {"synthia_size": [64, 128, 3]},
                                 {"gta_size_jitter": 0.6}, {"gta_size_jitter": -0.1}])
def test_schema_refuses_bad_sizes(toy):
    with pytest.raises(InputError, match="toy"):
        validate_config({"toy": toy})


def test_each_domain_is_written_at_its_own_size_and_gta_frames_vary(tmp_path):
    synthesize_toy_domains(SIZED, _roots(tmp_path), progress=False)
    assert {_size(p) for p in (tmp_path / "synthia" / "RGB").glob("*.png")} == {(38, 64)}
    assert {_size(p) for p in (tmp_path / "synthia" / "GT" / "LABELS").glob("*.png")} == {(38, 64)}
    target = {_size(p) for p in (tmp_path / "target").rglob("*_leftImg8bit.png")}
    assert target == {(32, 96)}
    gta = sorted((tmp_path / "gta" / "images").glob("*.png"))
    sizes = [_size(p) for p in gta]
    assert len(set(sizes)) > 1, "gta frames should differ in size"
    for height, width in sizes:
        assert 0.8 * 52 - 1 <= height <= 1.2 * 52 + 1 and 0.8 * 96 - 1 <= width <= 1.2 * 96 + 1
    # every label has its image's size, and the readers decode them
    assert sizes == [_size(tmp_path / "gta" / "labels" / p.name) for p in gta]
    for sample in open_dataset("gta5", tmp_path / "gta"):
        assert sample.labels.shape == sample.image.shape[:2]
    marker = json.loads((tmp_path / "gta" / MARKER).read_text())
    assert marker["settings"]["gta_size"] == [52, 96] and marker["settings"]["gta_size_jitter"] == 0.2


def test_jitter_draws_sizes_from_a_stream_of_its_own(tmp_path):
    """Frame sizes depend on (seed, index) only; the scene is the same content at its size."""
    jobs = [job for job in image_jobs(SIZED, _roots(tmp_path)) if job.domain == "gta"]
    again = [job for job in image_jobs({**SIZED, "gta_images": 3}, _roots(tmp_path)) if job.domain == "gta"]
    assert [(j.height, j.width) for j in jobs[:3]] == [(j.height, j.width) for j in again]
    other_seed = [job for job in image_jobs({**SIZED, "seed": 4}, _roots(tmp_path)) if job.domain == "gta"]
    assert [(j.height, j.width) for j in jobs] != [(j.height, j.width) for j in other_seed]
    # without jitter the gta frames keep gta_size; the same frame drawn with and without jitter
    # holds the same classes (the content's random stream is not touched by the size draw)
    plain = [job for job in image_jobs({**SIZED, "gta_size_jitter": 0.0}, _roots(tmp_path)) if job.domain == "gta"]
    assert {(j.height, j.width) for j in plain} == {(52, 96)}
    for job in (jobs[0], plain[0]):
        (tmp_path / f"gta-{job.height}x{job.width}" / "images").mkdir(parents=True)
        (tmp_path / f"gta-{job.height}x{job.width}" / "labels").mkdir()
        generate_image(ImageJob(**{**job.__dict__, "root": str(tmp_path / f"gta-{job.height}x{job.width}")}), SIZED["seed"])
    classes = [set(np.unique(np.asarray(Image.open(next((tmp_path / f"gta-{j.height}x{j.width}" / "labels").glob("*.png"))))))
               for j in (jobs[0], plain[0])]
    assert classes[0] == classes[1]


def test_default_settings_record_the_same_marker_as_before_the_size_options():
    toy = validate_config({})["toy"]
    recorded = recorded_settings(toy)
    assert set(recorded) == {"enabled", "seed", "height", "width", "synthia_images", "gta_images",
                             "gta_truck_and_train_fraction", "target_train_images", "target_val_images"}
    assert recorded_settings({**toy, "gta_size_jitter": 0.1})["gta_size_jitter"] == 0.1
    assert recorded_settings({**toy, "target_size": [64, 128]})["target_size"] == [64, 128]


def test_sizes_equal_to_height_and_width_give_the_bytes_of_the_plain_settings(tmp_path):
    """Setting every domain's size to height x width changes no image (only the marker's record)."""
    sized = {**BASE, "synthia_size": [32, 64], "gta_size": [32, 64], "target_size": [32, 64]}
    for name, settings in (("plain", BASE), ("sized", sized)):
        synthesize_toy_domains(settings, _roots(tmp_path / name), progress=False)
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.png"))}  # noqa: E731
    assert files(tmp_path / "plain") == files(tmp_path / "sized")
