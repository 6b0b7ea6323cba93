"""The options commands share, and reading an experiment config.

Defining an option imports nothing heavy, so that `tfiqa --help` is instant.
"""

import importlib

import click

from tfiqa.cli.group import start_tensorflow
from tfiqa.config_limits import MAX_CROPS


def config_options(example, data_dir=True):
    """The options of commands that read an experiment config.

    Args:
        example: str. A `--set` override this command actually reads.
        data_dir: bool. Whether the command offers `--data-dir` as the root
            that relative data paths resolve against.
    """

    def add(command):
        command = click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help=f"Override a config value, e.g. --set {example} (YAML value).",
        )(command)
        if data_dir:
            command = click.option(
                "--data-dir",
                type=click.Path(file_okay=False),
                help="Root folder that relative data paths in the config resolve "
                "against.",
            )(command)
        return click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            help="Experiment YAML (only differences from defaults).",
        )(command)

    return add


class RegistryChoice(click.Choice):
    """`click.Choice` among a registry's names, looked up on first use so
    that defining the command imports nothing (`tfiqa --help` stays fast).
    A wrong name gets the registry's "did you mean" message."""

    def __init__(self, module, registry):
        # click.Choice.__init__ would read the names now.
        self._where = (module, registry)
        self._registry = None
        self.case_sensitive = True

    @property
    def registry(self):
        if self._registry is None:
            module, name = self._where
            self._registry = getattr(importlib.import_module(module), name)
        return self._registry

    @property
    def choices(self):
        return tuple(self.registry.names())

    def convert(self, value, param, ctx):
        if value not in self.registry:
            self.fail(self.registry.unknown_message(value), param, ctx)
        return value


def folder_option(*names, help, **kwargs):
    """A `click.option` naming a folder."""
    return click.option(*names, type=click.Path(file_okay=False), help=help, **kwargs)


def file_option(*names, help, **kwargs):
    """A `click.option` naming a file."""
    return click.option(*names, type=click.Path(dir_okay=False), help=help, **kwargs)


def crops_options(command):
    """`--crops N` / `--full`: how many crops of the model's policy to score,
    or the whole image (the commands check that not both are given)."""
    command = click.option(
        "--full", is_flag=True, help="Score each whole image at its own size."
    )(command)
    return click.option(
        "--crops",
        type=click.IntRange(min=1, max=MAX_CROPS),
        default=None,
        help=f"Average N deterministic crops, 1 to {MAX_CROPS} (default: the "
        "model's policy).",
    )(command)


def trust_model_option(command):
    """`--trust-model`: run a SavedModel whose graph fails the op allowlist."""
    return click.option(
        "--trust-model",
        is_flag=True,
        help="Run a SavedModel even if its graph uses ops a scoring model does "
        "not need (file I/O, Python calls); only for models you trust.",
    )(command)


def workdir_option(default, help):
    """`--workdir`: the run directory a command writes and resumes."""
    return folder_option(
        "--workdir",
        default=default,
        show_default=True,
        help=help + " Running again with the same directory resumes.",
    )


def load_experiment_config(config_path, overrides, data_dir=None, default="quickstart"):
    start_tensorflow()  # validating the backbone and levels loads Keras
    from tfiqa import config as config_lib

    path = config_path or config_lib.builtin_config_path(default)
    if data_dir:
        overrides = (f"data.root={data_dir}", *overrides)
    return config_lib.load_config(path, overrides)
