"""Strict merging of YAML mappings and `--set` overrides into config dataclasses.

An unknown key is an error that lists the valid keys; values are coerced to
the field's type (YAML reads `1e-3` as a string); overrides are parsed as
YAML, never evaluated.
"""

import dataclasses
import math
import types
import typing

import yaml

from tfiqa.errors import ConfigError


def _coerce(value, field_type, key):
    union = typing.get_origin(field_type) is typing.Union
    if isinstance(field_type, types.UnionType) or union:
        args = [t for t in typing.get_args(field_type) if t is not type(None)]
        if value is None or len(args) != 1:
            return value  # checked by its rule in `tfiqa.config_limits`
        field_type = args[0]
    if field_type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise ConfigError(f"{key} must be true or false. Received: {value!r}")
    if field_type in (int, float):
        return _number(value, field_type, key)
    if field_type is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string. Received: {value!r}")
        return "" if value is None else str(value)
    if field_type is list:
        if isinstance(value, (str, int, float)):
            return [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list. Received: {value!r}")
        return list(value)
    if field_type is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping. Received: {value!r}")
        return dict(value)
    return value


def _number(value, field_type, key):
    """`value` as an int or float; a string such as "1e-3" is converted."""
    kind = field_type.__name__
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{key} must be {kind}. Received: {value!r}")
    if field_type is int and isinstance(value, int):
        return value  # exact, however large: the range check bounds it
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{key} must be {kind}. Received: {value!r}") from None
    if field_type is float:
        return number
    if not math.isfinite(number) or number != int(number):
        raise ConfigError(f"{key} must be an integer. Received: {value!r}")
    return int(number)


def merge(config, overrides, prefix=""):
    """Returns a copy of dataclass `config` with `overrides` (a dict) applied."""
    if not isinstance(overrides, dict):
        # A section left empty (`data:`) reads as null: say so, rather than
        # silently keeping its defaults.
        raise ConfigError(
            f"{prefix.rstrip('.') or 'config'} must be a mapping of keys to values. "
            f"Received: {overrides!r}"
        )
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for name, value in overrides.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise ConfigError(
                f"Unknown config key '{key}'. Valid keys here: {', '.join(fields)}."
            )
        current = getattr(config, name)
        if dataclasses.is_dataclass(current):
            changes[name] = merge(current, value, prefix=f"{key}.")
        else:
            changes[name] = _coerce(value, hints[name], key)
    return dataclasses.replace(config, **changes)


def parse_override(text):
    """Parses `a.b=value` into a nested dict, reading the value as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value. Received: {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError) as e:  # ValueError: an int of 5000 digits
        raise ConfigError(
            f"--set {key}: value is not valid YAML ({_yaml_problem(e)})"
        ) from None
    nested = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def read_yaml(path):
    """The mapping in YAML file `path`; every error names the file first."""
    try:
        with open(path) as f:
            content = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: config file is not UTF-8 text (byte {e.start})"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: config file is a folder") from None
    except (yaml.YAMLError, ValueError) as e:
        raise ConfigError(
            f"{path}: config file is not valid YAML ({_yaml_problem(e)})"
        ) from None
    if content is None:
        raise ConfigError(
            f"{path}: config file has no settings (empty or comments only)"
        )
    if not isinstance(content, dict):
        raise ConfigError(
            f"{path}: config file must hold a mapping of sections at the top. "
            f"Received: {type(content).__name__}"
        )
    return content


def _yaml_problem(error):
    """A YAML error in one line: where and what (PyYAML's own text spans
    several lines with a drawing of the position)."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    return where + " ".join(problem.split())
