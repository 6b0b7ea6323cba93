"""Exceptions for problems a user can fix (bad input, bad config, bad data).

The CLI turns every `TfiqaError` into a one-line message and exit status 2;
anything else is a bug and keeps its traceback.
"""


class TfiqaError(Exception):
    """Base class for user-facing errors."""


class ConfigError(TfiqaError):
    """A config file, key or value is invalid."""


class DataError(TfiqaError):
    """A dataset, score file or image cannot be used."""


class ImageError(DataError):
    """An image file is missing, unreadable, truncated or too small."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{reason}: {path}")


class TrainingError(TfiqaError):
    """Training cannot continue (for example the loss became NaN)."""


class LeakError(TfiqaError):
    """A run's test content was seen by one of its training stages."""


class UnsafeModelError(TfiqaError):
    """A model file would run code that scoring does not need; it is refused."""


class TfiqaWarning(UserWarning):
    """Base class of tfiqa's warnings; the CLI prints each as one line."""


class ConfigDeprecationWarning(TfiqaWarning, DeprecationWarning):
    """A config key of an older layout, moved to its new name on load."""


class AmbiguousModelWarning(TfiqaWarning):
    """A model argument names both an existing path and a shipped preset."""


def first_line(error):
    """The first line of an exception's message (TF's can run for pages)."""
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


class MissingSidecarWarning(TfiqaWarning):
    """An export is scored without its sidecar, under a fallback policy."""
