"""The schema fills defaults and names mistyped keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from selfpanoptic.config import load_config, section_settings, validate_config
from selfpanoptic.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_filled_in_nested_sections():
    config = validate_config({"mixing": {"min_pixels": 5}})
    assert config["mixing"] == {"min_pixels": 5, "require_all": ["truck", "train"], "sources": ["synthia", "gta"],
                                "translated": 0.0}
    assert config["datasets"]["target"]["val_split"] == "val"
    assert config["toy"]["enabled"] is True


def test_input_is_not_modified():
    original = {"mixing": {}}
    validate_config(original)
    assert original == {"mixing": {}}


def test_misspelt_key_is_named_with_a_suggestion():
    with pytest.raises(InputError) as info:
        validate_config({"mixing": {"requre_all": ["truck"]}}, "my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: invalid config")
    assert "'mixing.requre_all'" in message and "did you mean 'require_all'" in message


def test_wrong_type_and_unknown_class_are_named():
    with pytest.raises(InputError) as info:
        validate_config({"data": {"height": "big"}, "mixing": {"require_all": ["lorry"]}})
    message = str(info.value)
    assert "'data.height'" in message and "'mixing.require_all.0'" in message and "lorry" in message


def test_shipped_configs_are_valid_and_default_matches_schema():
    default = load_config(ROOT / "config.yaml")
    assert default == validate_config({}), "config.yaml should spell out the schema defaults"
    smoke = load_config(ROOT / "configs" / "smoke.yaml")
    assert smoke["toy"]["synthia_images"] < default["toy"]["synthia_images"]


def test_section_settings_from_inline_json_or_file(tmp_path):
    assert section_settings("mixing", None, json.dumps({"min_pixels": 3}))["min_pixels"] == 3
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"mixing": {"min_pixels": 4}}))
    assert section_settings("mixing", str(path), None)["min_pixels"] == 4
    with pytest.raises(InputError, match="not valid JSON"):
        section_settings("mixing", None, "{min_pixels: 3")


def test_unreadable_config_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("toy: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(bad)


def test_instance_groups_must_not_overlap():
    groups = {"auto": ["car", "bus"], "big": ["bus", "truck"]}
    with pytest.raises(InputError, match="class 'bus' is in instance groups 'auto' and 'big'"):
        validate_config({"instance": {"groups": groups}})
    assert validate_config({"instance": {"groups": {"a": ["car"], "b": ["bus"]}}})["instance"]["groups"]["b"] == ["bus"]


def test_real_data_preset_is_valid():
    preset = load_config(ROOT / "configs" / "synthia-gta-cityscapes.yaml")
    assert preset["toy"]["enabled"] is False and preset["semantic"]["model"]["aspp_rates"] == [6, 12, 18, 24]


def test_real_data_protocol_presets_are_valid():
    from selfpanoptic.config import has_instances, source_datasets

    synthia = load_config(ROOT / "configs" / "synthia-cityscapes.yaml")
    gta = load_config(ROOT / "configs" / "gta-cityscapes.yaml")
    assert source_datasets(synthia) == ["synthia"] and has_instances(synthia)
    assert source_datasets(gta) == ["gta"] and not has_instances(gta)
    for name in ("synthia", "gta"):
        overlay = load_config(ROOT / "configs" / "protocols" / f"{name}.yaml")
        assert overlay["mixing"]["sources"] == [name]


@pytest.mark.parametrize(("sources", "expected", "instances"), [
    (None, ["synthia", "gta"], True),
    (["gta", "synthia"], ["synthia", "gta"], True),  # a set: mixing order is fixed
    (["synthia"], ["synthia"], True),
    (["gta"], ["gta"], False),
])
def test_sources_decide_datasets_and_instance_stages(sources, expected, instances):
    from selfpanoptic.config import datasets_in_use, has_instances, source_datasets

    config = validate_config({} if sources is None else {"mixing": {"sources": sources}})
    assert source_datasets(config) == expected and datasets_in_use(config) == [*expected, "target"]
    assert has_instances(config) is instances


@pytest.mark.parametrize(("sources", "message"), [
    ([], "'mixing.sources': [] should be non-empty"),
    (["cityscapes"], "'mixing.sources.0': 'cityscapes' is not one of ['synthia', 'gta']"),
    (["gta", "gta"], "'mixing.sources': ['gta', 'gta'] has non-unique elements"),
    ("gta", "'mixing.sources': 'gta' is not of type 'array'"),
])
def test_nonsense_sources_name_the_key(sources, message):
    with pytest.raises(InputError) as info:
        validate_config({"mixing": {"sources": sources}})
    assert message in str(info.value)


def test_gta_only_switches_predicted_guidance_off_with_one_note():
    from selfpanoptic.config import guidance_mode, protocol_config

    config = validate_config({"mixing": {"sources": ["gta"]}, "selftrain": {"guidance": {"from_round": 2}}})
    adjusted, note = protocol_config(config)
    assert adjusted["selftrain"]["guidance"]["from_round"] == 0 and config["selftrain"]["guidance"]["from_round"] == 2
    assert guidance_mode(adjusted["selftrain"]["guidance"], 5) == "none"
    assert note.startswith("mixing.sources is [gta]: GTA5 has no instance labels") and "from_round 2 -> 0" in note
    unguided = validate_config({"mixing": {"sources": ["gta"]}, "selftrain": {"guidance": {"from_round": 0}}})
    assert "from_round" not in protocol_config(unguided)[1]
    for sources in (["synthia"], ["synthia", "gta"]):
        config = validate_config({"mixing": {"sources": sources}})
        assert protocol_config(config) == (config, None)


def test_gta_only_refuses_ground_truth_instance_guidance():
    with pytest.raises(InputError, match="selftrain.guidance.gt_instance_fraction is 0.5") as info:
        validate_config({"mixing": {"sources": ["gta"]}, "selftrain": {"guidance": {"gt_instance_fraction": 0.5}}})
    assert "add synthia to mixing.sources" in str(info.value)
    validate_config({"mixing": {"sources": ["synthia"]}, "selftrain": {"guidance": {"gt_instance_fraction": 0.5}}})


def test_unused_datasets_are_not_required(tmp_path):
    from selfpanoptic.data.required import check_required_dataset_files, required_dataset_paths

    target = tmp_path / "cityscapes"
    (target / "gtFine" / "val" / "city").mkdir(parents=True)
    (target / "gtFine" / "val" / "city" / "city_000000_000000_gtFine_labelIds.png").touch()  # a labelled val split
    (tmp_path / "gta").mkdir()
    datasets = {"gta": {"root": str(tmp_path / "gta")}, "synthia": {"root": str(tmp_path / "absent")},
                "target": {"root": str(target)}}
    config = validate_config({"toy": {"enabled": False}, "datasets": datasets, "mixing": {"sources": ["gta"]}})
    paths = required_dataset_paths(config)
    assert not any("synthia" in what or "panoptic" in what for what in paths)
    check_required_dataset_files(config)  # no synthia root, no panoptic ground truth: fine without instances
    config = validate_config({"toy": {"enabled": False}, "datasets": datasets, "mixing": {"sources": ["synthia"]}})
    with pytest.raises(InputError) as info:
        check_required_dataset_files(config)
    message = str(info.value)
    assert "synthia root (datasets.synthia.root)" in message and "panoptic ground-truth JSON" in message
    assert "gta root" not in message
