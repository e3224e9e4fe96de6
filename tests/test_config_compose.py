"""Config layers compose as documented: fixed-key sections merge, user-keyed maps are replaced."""

from __future__ import annotations

import pytest

from selfpanoptic.config import compose_configs, replace_paths, validate_config
from selfpanoptic.errors import InputError


def test_instance_groups_is_the_replace_map():
    assert ("instance", "groups") in replace_paths()
    assert ("instance",) not in replace_paths()


def test_a_later_layer_replaces_groups_but_merges_the_rest():
    layer = {"instance": {"groups": {"vehicles": ["car"], "people": ["person"]}}}
    merged = {"instance": {"groups": {"all": ["car", "person"], "vehicles": ["car"], "people": ["person"]},
                           "train": {"steps": 200}}}  # what a key-by-key merge makes
    composed = compose_configs(merged, [layer])
    assert composed["instance"]["groups"] == {"vehicles": ["car"], "people": ["person"]}
    assert composed["instance"]["train"] == {"steps": 200}
    validate_config(composed)
    with pytest.raises(InputError, match="class 'car' is in instance groups 'all' and 'vehicles'"):
        validate_config(merged)  # what Snakemake's key-by-key merge alone gives


def test_the_last_layer_that_sets_a_map_wins_and_absent_maps_stay():
    merged = {"instance": {"groups": {"a": ["car"], "b": ["bus"]}}}
    assert compose_configs(merged, [{"instance": {"groups": {"a": ["car"]}}}, {"instance": {"groups": {"b": ["bus"]}}}])[
        "instance"]["groups"] == {"b": ["bus"]}
    assert compose_configs(merged, [{"oracle": False}]) == merged
