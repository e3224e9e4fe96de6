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
    assert config["mixing"] == {"min_pixels": 5, "require_all": ["truck", "train"]}
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
