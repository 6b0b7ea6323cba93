"""Dataset readers: native on-disk IQA datasets -> records.

A record is a dict `{"image_path", "mos", "mos_raw", "ref_id", "distortion",
"level"}`; `mos` is in [0, 1] with higher meaning better quality, `mos_raw` is
the dataset's own score (native scale and direction).
"""

import inspect
import os

# Importing the modules registers their readers.
from tfiqa.data.readers import (  # noqa: F401
    biq2021,
    csiq,
    distorted,
    generic_csv,
    kadid10k,
    koniq10k,
    live,
    livec,
    spaq,
    tid2013,
)
from tfiqa.data.readers.registry import READERS
from tfiqa.errors import ConfigError, DataError


def read_dataset(kind, data_dir, **options):
    """Reads the dataset `kind` stored under `data_dir`.

    Args:
        kind: str. A name in `READERS` ("csv", "live", "koniq10k", ...).
        data_dir: str. The dataset's root folder.
        **options: reader-specific options (see each reader's docstring),
            for example `skip_bad=True`.

    Returns:
        list of record dicts.

    Raises:
        ConfigError: unknown reader or option.
        DataError: missing folder/file, bad score file, missing image.
    """
    reader = READERS.get(kind)
    if not data_dir or not os.path.isdir(data_dir):
        raise DataError(
            f"Dataset folder for '{kind}' not found. Received: data_dir={data_dir!r}"
        )
    params = inspect.signature(reader).parameters
    valid = [p for p in params if p != "data_dir"]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ConfigError(
            f"Unknown option(s) for dataset reader '{kind}': {', '.join(unknown)}. "
            f"Valid options: {', '.join(valid)}. Received: {sorted(options)}"
        )
    records = reader(os.path.abspath(data_dir), **options)
    if not records:
        raise DataError(
            f"Dataset reader '{kind}' found no usable images. "
            f"Received: data_dir={data_dir!r}"
        )
    return records


__all__ = ["READERS", "read_dataset"]
