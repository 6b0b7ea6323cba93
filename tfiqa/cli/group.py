"""The `tfiqa` command group: how commands start, fail and stop.

TensorFlow is imported inside commands so that `tfiqa --help` is instant.
Problems a user can fix (`TfiqaError`) exit with status 2 and one line.
"""

import functools
import signal
import sys
import warnings

import click

from tfiqa.errors import ConfigDeprecationWarning, TfiqaError, TfiqaWarning
from tfiqa.quiet_import import import_tensorflow_quietly

EXIT_USER_ERROR = 2


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
