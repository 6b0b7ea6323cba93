"""Strict merging of YAML mappings and `--set` overrides into config dataclasses.

An unknown key is an error that lists the valid keys; values are coerced to
the field's type (YAML reads `1e-3` as a string); overrides are parsed as
YAML, never evaluated.
"""

import dataclasses
import types
import typing

import yaml

from tfiqa.errors import ConfigError


def _coerce(value, field_type, key):
    origin = typing.get_origin(field_type)
    if isinstance(field_type, types.UnionType) or origin is typing.Union:
        return value
    if field_type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise ConfigError(f"{key} must be true or false. Received: {value!r}")
    if field_type in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number. Received: {value!r}")
        try:
            number = field_type(float(value)) if field_type is int else float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{key} must be {field_type.__name__}. Received: {value!r}"
            ) from None
        if field_type is int and float(value) != number:
            raise ConfigError(f"{key} must be an integer. Received: {value!r}")
        return number
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


def merge(config, overrides, prefix=""):
    """Returns a copy of dataclass `config` with `overrides` (a dict) applied."""
    if not isinstance(overrides, dict):
        raise ConfigError(
            f"{prefix or 'config'} must be a mapping. Received: {overrides!r}"
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
            changes[name] = merge(current, value or {}, prefix=f"{key}.")
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
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: value is not valid YAML ({e})") from None
    nested = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def read_yaml(path):
    try:
        with open(path) as f:
            content = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"Config file is not UTF-8 text: {path} (byte {e.start})"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"Config file is a folder: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"Config file is not valid YAML: {path} ({e})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"Config file must contain a mapping at the top: {path}")
    return content
