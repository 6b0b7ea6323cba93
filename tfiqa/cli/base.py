"""The `tfiqa` command group and what its commands share.

TensorFlow is imported inside commands so that `tfiqa --help` is instant.
Problems a user can fix (`TfiqaError`) exit with status 2 and one line.
"""

import functools
import importlib
import os
import signal
import sys
import tempfile
import warnings

import click

from tfiqa.errors import ConfigDeprecationWarning, TfiqaError, TfiqaWarning

EXIT_USER_ERROR = 2
# More crops than this barely steadies a mean score and takes minutes per
# image (200,000 crops ran for minutes before anything was written).
MAX_CROPS = 100


class UserError(click.ClickException):
    exit_code = EXIT_USER_ERROR


def user_errors(command):
    """Turns `TfiqaError` (and click's file errors) into a one-line exit 2,
    and prints tfiqa's own warnings as one "Warning: ..." line on stderr."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            # Ignored by default as a DeprecationWarning; shown once each.
            warnings.simplefilter("default", ConfigDeprecationWarning)
            try:
                return command(*args, **kwargs)
            except TfiqaError as e:
                raise UserError(str(e)) from None

    return wrapper


def _one_line_warnings(show):
    def showwarning(message, category, *args, **kwargs):
        if issubclass(category, TfiqaWarning):
            click.echo(f"Warning: {message}", err=True)
        else:
            show(message, category, *args, **kwargs)

    return showwarning


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


def import_tensorflow_quietly():
    """Imports TensorFlow without its C++ start-up lines on stderr.

    oneDNN, cudart and cuInit notices are written by native code while the
    libraries load, before TF_CPP_MIN_LOG_LEVEL is read, so stderr's file
    descriptor is pointed at a temporary file for the import and device
    discovery; what was written there is replayed only if the import fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def start_tensorflow():
    """Called by a command before its first TensorFlow import."""
    if not click.get_current_context().find_root().params.get("verbose"):
        import_tensorflow_quietly()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfiqa")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's own log lines (oneDNN, CUDA, device set-up).",
)
def cli(verbose):
    """tfiqa: no-reference image quality assessment for TensorFlow/Keras."""


def _exit_on_sigterm(signum, frame):
    # SystemExit unwinds `finally` blocks: temporary files and locks go away.
    sys.exit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
