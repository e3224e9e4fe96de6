"""Where a config comes from: YAML files, read strictly, and ``--config`` values, typed by the schema.

:func:`read_config_file` refuses what PyYAML would silently get wrong: a key written twice (the
last would win) and a key YAML 1.1 reads as another type (``off:`` is the boolean False).
:func:`command_line_config` reads Snakemake's ``--config KEY=VALUE`` values, which arrive as text,
as the types the schema wants (``seeds=[0,1]`` as a list of integers).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import InputError

__all__ = ["StrictLoader", "command_line_config", "read_config_file", "type_hint", "value_fits", "yaml_reading"]


class _KeyProblem(Exception):
    """A duplicate or non-string key met while reading a config file (its problem and fix)."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


_MERGE_TAG = "tag:yaml.org,2002:merge"


def yaml_reading(key: Any) -> str:
    """How YAML read a key that is not a string, e.g. ``the boolean False``."""
    if isinstance(key, bool):
        return f"the boolean {key}"
    if key is None:
        return "null"
    if isinstance(key, (int, float)):
        return f"the number {key}"
    return f"a {type(key).__name__}"


class StrictLoader(yaml.SafeLoader):
    """A YAML SafeLoader for config files that refuses duplicate keys and keys that are not strings.

    PyYAML keeps the last of two equal keys silently, so half of a section written twice would be
    lost; and YAML 1.1 reads unquoted ``off``, ``on``, ``yes``, ``no`` (and numbers) as other
    types, so an experiment named ``off`` would be named ``False``. Both raise with the key's path
    and line (merge keys, ``<<``, may still override what they merge in).
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.key_paths: dict[int, str] = {}

    def compose_document(self):
        node = super().compose_document()
        self._name_nodes(node, "", set())
        return node

    def _name_nodes(self, node: yaml.Node, path: str, seen: set[int]) -> None:
        """Record the key path of every mapping below ``node`` (for messages)."""
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self.key_paths[id(node)] = path
            for key_node, value_node in node.value:
                child = path
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    child = f"{path}.{key_node.value}" if path else key_node.value
                self._name_nodes(value_node, child, seen)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._name_nodes(item, f"{path}.{index}" if path else str(index), seen)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            path = self.key_paths.get(id(node), "")
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                if not isinstance(key, str):
                    text = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)
                    under = f" under {path}" if path else ""
                    raise _KeyProblem(f"key {text!r}{under} (line {line}) is read by YAML as {yaml_reading(key)}, "
                                      "not as a name", f"quote it: '{text}':")
                if key in lines:
                    full = f"{path}.{key}" if path else key
                    raise _KeyProblem(f"key {full!r} appears twice (lines {lines[key]} and {line})",
                                      "merge the two into one")
                lines[key] = line
        return super().construct_mapping(node, deep)


def read_config_file(path: str | Path) -> Any:
    """The data of a YAML (or JSON) config file, read with :class:`StrictLoader`.

    Raises :class:`InputError` naming the file for a missing file, a file that is not UTF-8 text,
    invalid YAML, a key that appears twice in one map or a key that YAML reads as something else
    than a string.
    """
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=StrictLoader)
    except FileNotFoundError:
        raise InputError("config file does not exist", path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"config file is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position {exc.start})",
                         path, "give a YAML or JSON config file, saved as UTF-8") from None
    except _KeyProblem as exc:
        raise InputError(exc.problem, path, exc.fix) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"config file is not valid YAML: {problem}{where}", path,
                         "fix the YAML syntax (indentation, brackets, quotes)") from None


def _list_example(value: Any) -> str:
    """``[0,1]`` for a value meant as a list (``'0,1'``, ``'0 1'``, ``1``)."""
    if isinstance(value, str):
        return "[" + ",".join(part for part in re.split(r"[\s,]+", value.strip("[]() ")) if part) + "]"
    return f"[{json.dumps(value)}]"


def type_hint(error: jsonschema.ValidationError) -> str:
    """How to write a value of the wanted type, after a ``type`` error (empty otherwise).

    Lists on the command line need brackets and shell quotes (``--config 'seeds=[0,1]'``);
    a whole float where an integer belongs is written without its ``.0``; text where a number or
    boolean belongs is usually a quoted value in a file, a value inside a ``--config`` map, which
    Snakemake passes as text, or an exponent YAML 1.1 reads as text (``1e-3``).
    """
    if error.validator != "type":
        return ""
    wanted = {error.validator_value} if isinstance(error.validator_value, str) else set(error.validator_value)
    path = [str(part) for part in error.absolute_path]
    if "array" in wanted and not isinstance(error.instance, list) and path:
        example = _list_example(error.instance)
        if len(path) == 1:
            return (f"; write a list: --config '{path[0]}={example}' on the command line (quoted, so that the "
                    f"shell keeps it one word), or {path[0]}: {example} in a config file")
        nested = example
        for key in reversed(path[1:]):
            nested = f"{{{key}: {nested}}}"
        return f"; write a list in a config file: {path[0]}: {nested}"
    if isinstance(error.instance, float) and error.instance.is_integer() and "integer" in wanted:
        return f"; write {int(error.instance)}"
    if not isinstance(error.instance, str) or not path:
        return ""
    try:
        parsed = yaml.safe_load(error.instance)
    except yaml.YAMLError:
        return ""
    if isinstance(parsed, str) and wanted & {"number", "integer"}:
        return _number_text_hint(error.instance, wanted)
    if not value_fits(parsed, wanted):
        return ""
    if len(path) == 1:
        return f"; it is the text {error.instance!r}: write it without quotes"
    return (f"; it is the text {error.instance!r}: write it without quotes (in a --config map, set "
            f"{'.'.join(path)} in a config file instead)")


def _number_text_hint(text: str, wanted: set[str]) -> str:
    """How to write a number YAML 1.1 read as text (empty when ``text`` is no number).

    YAML 1.1 reads an exponent as a number only with a dot in the mantissa and a signed exponent
    (``1.0e-3``, ``1.0e+3``): ``1e-3`` and ``1.0e3`` are text.
    """
    try:
        value = float(text)
    except ValueError:
        return ""
    if not math.isfinite(value) or ("number" not in wanted and not value.is_integer()):
        return ""
    plain = format(value, "f").rstrip("0").rstrip(".")
    if "number" not in wanted:
        return f"; YAML reads {text} as text: write {plain}"
    mantissa, _, exponent = text.strip().lower().partition("e")
    mantissa += "" if "." in mantissa else ".0"
    scientific = f"{mantissa}e{exponent if exponent[:1] in ('+', '-') else '+' + exponent}"
    if exponent and isinstance(yaml.safe_load(scientific), float):
        return f"; YAML reads {text} as text: write {scientific} (or {plain})"
    return f"; YAML reads {text} as text: write {plain}"


def _json_types(value: Any) -> set[str]:
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):  # 2.0 is no integer: the config's validator wants ints (config._Validator)
        return {"number"}
    names = {type(None): "null", str: "string", list: "array", dict: "object"}
    return {name for kind, name in names.items() if isinstance(value, kind)}


def value_fits(value: Any, wanted: set[str]) -> bool:
    """Whether ``value`` is of one of the JSON types ``wanted`` (``{"integer", "array"}``)."""
    return bool(_json_types(value) & wanted)


def _schema_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a subschema accepts (``type``, ``enum``, ``const``, ``anyOf``/``oneOf``)."""
    kinds = schema.get("type", [])
    found = {kinds} if isinstance(kinds, str) else set(kinds)
    for value in [*schema.get("enum", []), *([schema["const"]] if "const" in schema else [])]:
        found |= _json_types(value)
    for branch in [*schema.get("anyOf", []), *schema.get("oneOf", [])]:
        found |= _schema_types(branch)
    return found


def _typed(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with text the schema refuses read as YAML, where that gives a type it accepts."""
    if isinstance(value, list):
        items = schema.get("items")
        return [_typed(item, items if isinstance(items, dict) else {}) for item in value]
    if not isinstance(value, str) or not schema or jsonschema.Draft202012Validator(schema).is_valid(value):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    wanted = _schema_types(schema)
    if isinstance(parsed, str) or not value_fits(parsed, wanted):
        return value
    return _typed(parsed, schema) if isinstance(parsed, list) else parsed


def command_line_config(values: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """The ``--config KEY=VALUE`` values, as Snakemake parsed them, typed by the schema.

    Snakemake tries int, float and ``True``/``False``, then reads the value as YAML that keeps
    every scalar as text: ``seeds=[0,1]`` arrives as ``['0', '1']`` and ``oracle=false`` as
    ``'false'``. Here each top-level value's text is read as YAML where the schema refuses text
    and the YAML reading has a type it accepts (``[0, 1]``, ``False``); text the schema accepts
    stays text. Maps (nested sections, ``resources={jobs_per_gpu: 4}``) are left as they are: the
    schema error then says to set them in a config file. ``schema``: the config schema
    (:func:`selfpanoptic.config.load_schema`).
    """
    properties = schema.get("properties", {})
    return {key: value if isinstance(value, dict) or key not in properties else _typed(value, properties[key])
            for key, value in dict(values).items()}
