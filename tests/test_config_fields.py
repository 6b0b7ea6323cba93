"""Every config field is read by some code: a field nothing reads would be
silently ignored when a user sets it."""

import pathlib
import re

from tfiqa import config as config_lib
from tfiqa.config_limits import leaf_fields

PACKAGE = pathlib.Path(config_lib.__file__).parent
# The schema, its rules and the table of old names name every key as text.
SCHEMA = ("config.py", "config_stages.py", "config_limits.py", "config_migration.py")


def config_fields():
    """(dotted parent, field) of every leaf field of `ExperimentConfig`."""
    for key, *_ in leaf_fields(config_lib.ExperimentConfig()):
        parent, _, name = key.rpartition(".")
        yield parent, name


def code_outside_config():
    return "\n".join(
        path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.parent != PACKAGE or path.name not in SCHEMA
    )


def unread_fields(code):
    return [
        f"{section}.{field}"
        for section, field in config_fields()
        if not re.search(rf"\.{field}\b", code)
    ]


def test_every_config_field_is_read_outside_config_py():
    assert unread_fields(code_outside_config()) == []


def test_the_check_finds_an_unread_field():
    code = code_outside_config().replace(".pristine_val_dirs", ".renamed")
    assert unread_fields(code) == ["data.pristine_val_dirs"]
