"""The `tfiqa` command line: a thin layer over the library.

TensorFlow is imported inside commands so that `tfiqa --help` is instant.
Problems a user can fix (`TfiqaError`) exit with status 2 and one line.
Each command lives in its own module and registers itself on `cli`.
"""

from tfiqa.cli import (  # noqa: F401  (register the commands)
    beam_predict,
    distort,
    evaluate,
    export,
    listing,
    lodo,
    predict,
    train,
)
from tfiqa.cli.group import EXIT_USER_ERROR, UserError, cli, main

__all__ = ["EXIT_USER_ERROR", "UserError", "cli", "main"]
