"""Mixing keeps every base image and exactly the extra images containing all required classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selfpanoptic.classes import CLASS_NAMES, class_id
from selfpanoptic.data.manifest import PIXEL_COLUMNS, column_name, label_statistics
from selfpanoptic.errors import InputError
from selfpanoptic.mixing import class_statistics, mix_parts, mix_sources, select_images_with_all, statistics_markdown


def manifest(name: str, pixel_rows: list[dict[str, int]]) -> pd.DataFrame:
    rows = []
    for i, pixels in enumerate(pixel_rows):
        row = {"dataset": name, "image_id": f"{name}{i}"}
        row.update({col: 0 for col in PIXEL_COLUMNS})
        row.update({column_name("pixels", k): v for k, v in pixels.items()})
        rows.append(row)
    return pd.DataFrame(rows)


GTA = manifest("gta", [
    {"road": 100, "truck": 5, "train": 7},   # both: selected
    {"road": 100, "truck": 5},               # truck only
    {"road": 100, "train": 9},               # train only
    {"road": 100, "truck": 1, "train": 30},  # both, but a 1-pixel truck
])
SYNTHIA = manifest("synthia", [{"road": 50, "car": 10}, {"sky": 60}])


def test_selection_requires_every_class():
    assert select_images_with_all(GTA, ["truck", "train"]).tolist() == [True, False, False, True]
    assert select_images_with_all(GTA, ["truck", "train"], min_pixels=2).tolist() == [True, False, False, False]
    assert select_images_with_all(GTA, ["train"]).tolist() == [True, False, True, True]


def test_mixed_source_is_all_base_plus_selected_extra():
    mixed = mix_sources(SYNTHIA, GTA, ["truck", "train"])
    assert mixed["image_id"].tolist() == ["synthia0", "synthia1", "gta0", "gta3"]


def test_empty_selection_is_an_error_with_counts():
    with pytest.raises(InputError) as info:
        mix_sources(SYNTHIA, GTA, ["truck", "bus"])
    message = str(info.value)
    assert "truck: 3 images" in message and "bus: 0 images" in message and "require_all" in message


def test_class_statistics_before_and_after():
    mixed = mix_sources(SYNTHIA, GTA, ["truck", "train"])
    table = class_statistics({"synthia": SYNTHIA, "mixed": mixed}).set_index("class")
    assert table.loc["truck", "synthia_pixels"] == 0
    assert table.loc["truck", "mixed_pixels"] == 6 and table.loc["truck", "mixed_images"] == 2
    assert table.loc["train", "mixed_pixels"] == 37
    total = 50 + 10 + 60 + 100 + 5 + 7 + 100 + 1 + 30
    assert table.loc["road", "mixed_pixel_share"] == pytest.approx(100 * 250 / total, abs=1e-3)
    assert table["mixed_pixel_share"].sum() == pytest.approx(100, abs=0.01)


def test_label_statistics_counts_pixels_and_instances():
    labels = np.array([[13, 13, 11, 255], [13, 0, 11, 255]], dtype=np.uint8)
    instances = np.array([[1, 1, 2, 3], [1, 0, 2, 3]])
    stats = label_statistics(labels, instances)
    assert stats["pixels_car"] == 3 and stats["pixels_road"] == 1 and stats["pixels_ignore"] == 2
    assert stats["instances_car"] == 1 and stats["instances_person"] == 1
    assert stats["instances_unlabelled"] == 1  # instance 3 lies on ignore only (a Synthia truck)
    assert sum(v for k, v in stats.items() if k.startswith("pixels_")) == labels.size
    assert class_id("car") == CLASS_NAMES.index("car")


def test_two_source_parts_compare_before_and_after():
    parts = mix_parts(SYNTHIA, GTA, ["truck", "train"])
    assert list(parts) == ["synthia", "gta", "gta_selected", "mixed"]
    assert parts["gta_selected"]["image_id"].tolist() == ["gta0", "gta3"]
    page = statistics_markdown(class_statistics(parts), parts, ["truck", "train"])
    assert "all of: truck, train" in page and "| gta_selected images |" in page


@pytest.mark.parametrize("only", [SYNTHIA, GTA], ids=["synthia", "gta"])
def test_one_source_is_every_image_of_it_whatever_require_all(only):
    # ["bus"]: no image holds one, which would stop a two-source mix; one source never filters
    parts = mix_parts(only, None, ["bus"], min_pixels=1000)
    name = only["dataset"].iloc[0]
    assert list(parts) == [name, "mixed"]
    assert parts["mixed"]["image_id"].tolist() == only["image_id"].tolist()
    table = class_statistics(parts)
    assert (table["mixed_pixels"] == table[f"{name}_pixels"]).all()
    page = statistics_markdown(table, parts, ["bus"])
    assert f"every image of {name}" in page and "bus" not in page.split("|")[0]
    assert "| mixed images |" not in page  # the same numbers twice would say nothing


def test_one_synthia_source_lacks_truck_and_train():
    parts = mix_parts(SYNTHIA, None, ["truck", "train"])
    page = statistics_markdown(class_statistics(parts), parts, ["truck", "train"])
    missing = page.rsplit("Classes without any pixel in the source: ", 1)[1]
    assert "truck" in missing and "train" in missing and "road" not in missing
