"""Helpers shared by the dataset readers: records, score scaling, file checks."""

import logging
import math
import os

import numpy as np
import pandas as pd
import scipy.io

from tfiqa.errors import DataError, ImageError

logger = logging.getLogger("tfiqa.data")


def scale_score(raw, score_range, higher_is_better=True):
    """Maps a native score to [0, 1], higher is better.

    Args:
        raw: float. The dataset's native score.
        score_range: (lo, hi). The native scale's bounds.
        higher_is_better: bool. False for DMOS-style scores.

    Returns:
        float in [0, 1] (values outside `score_range` are clipped).
    """
    lo, hi = float(score_range[0]), float(score_range[1])
    mos = (float(raw) - lo) / (hi - lo)
    if not higher_is_better:
        mos = 1.0 - mos
    return min(1.0, max(0.0, mos))


def make_record(image_path, mos, mos_raw, ref_id, distortion="", level=0):
    """Builds one record as specified in the data contract."""
    return {
        "image_path": os.path.abspath(os.fspath(image_path)),
        "mos": float(mos),
        "mos_raw": float(mos_raw),
        "ref_id": str(ref_id),
        "distortion": str(distortion),
        "level": int(level),
    }


def require_file(path, what):
    """Raises DataError unless `path` is an existing file."""
    if not os.path.isfile(path):
        raise DataError(
            f"{what} not found. Expected a file at: {path}. "
            f"Received: data_dir={os.path.dirname(path) or '.'}"
        )
    return path


def check_images(records, score_file, skip_bad=False):
    """Checks that every record's image exists.

    A missing image raises ImageError naming it and the score file that
    listed it; with `skip_bad=True` each one is logged, counted and dropped.

    Returns:
        The records whose image files exist.
    """
    kept = []
    skipped = 0
    for record in records:
        path = record["image_path"]
        if os.path.isfile(path):
            kept.append(record)
            continue
        if not skip_bad:
            raise ImageError(
                path,
                f"Image listed in {score_file} not found (set skip_bad: true to "
                "skip missing images)",
            )
        skipped += 1
        logger.warning("Skipping missing image listed in %s: %s", score_file, path)
    if skipped:
        logger.warning(
            "Skipped %d of %d records from %s because their image is missing.",
            skipped,
            len(records),
            score_file,
        )
    return kept


def read_table(path, required_columns, sheet_name=0, **kwargs):
    """Reads a CSV or Excel file; checks that the required columns exist.

    Raises:
        DataError: the file cannot be parsed or lacks a required column; the
            message lists the columns that are present.
    """
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".xlsx", ".xlsm", ".xls"):
            frame = pd.read_excel(path, sheet_name=sheet_name, **kwargs)
        else:
            frame = pd.read_csv(path, **kwargs)
    except (ValueError, OSError, pd.errors.ParserError, KeyError) as e:
        raise DataError(f"Cannot read score file {path}: {e}") from e
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required_columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"Score file {path} has no column {', '.join(map(repr, missing))}. "
            f"Received columns: {', '.join(map(repr, frame.columns))}"
        )
    return frame


def to_float(value, path, row):
    """Parses one score cell; a blank or non-numeric cell is a DataError."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out):
        raise DataError(
            f"Score file {path} has a missing or non-numeric score in row {row}. "
            f"Received: {value!r}"
        )
    return out


class CaseInsensitiveFolder:
    """Resolves file names in a folder, tolerating case differences.

    Several datasets list names whose case differs from the files on disk
    (TID2013's `i25.bmp` vs `I25.BMP`, CSIQ's `.AWGN.`); an exact match wins,
    otherwise a unique case-insensitive match is used. Names that do not
    exist are returned unchanged so that the missing-file check reports them.
    """

    def __init__(self, folder):
        self.folder = folder
        self._lower = None

    def path(self, name):
        exact = os.path.join(self.folder, name)
        if os.path.exists(exact):
            return exact
        if self._lower is None:
            self._lower = {}
            if os.path.isdir(self.folder):
                for entry in os.listdir(self.folder):
                    self._lower.setdefault(entry.lower(), entry)
        found = self._lower.get(os.path.basename(name).lower())
        if found is None or os.path.dirname(name):
            return exact
        return os.path.join(self.folder, found)


def cell_str(value):
    """A spreadsheet/.mat cell as text (`1600.0` -> "1600")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def mat_strings(array):
    """Flattens a MATLAB cell array of strings loaded by scipy.io.loadmat."""
    out = []
    for item in np.asarray(array, dtype=object).ravel():
        while isinstance(item, np.ndarray) and item.dtype == object and item.size:
            item = item.ravel()[0]
        if isinstance(item, np.ndarray):
            item = "".join(item.ravel().tolist()) if item.size else ""
        out.append(str(item).strip())
    return out


def load_mat(path, key):
    """Reads variable `key` from a MATLAB v4/v5/v7 .mat file.

    Raises:
        DataError: the file is unreadable (for example MATLAB v7.3/HDF5) or
            lacks `key`; the message lists the variables present.
    """
    try:
        data = scipy.io.loadmat(path)
    except (ValueError, NotImplementedError, OSError, TypeError) as e:
        raise DataError(f"Cannot read MATLAB file {path}: {e}") from e
    if key not in data:
        present = [k for k in data if not k.startswith("__")]
        raise DataError(
            f"MATLAB file {path} has no variable '{key}'. "
            f"Received variables: {', '.join(present)}"
        )
    return data[key]


def authentic_reader(title, file, image_dir, name_column, score_column, score_range):
    """A reader of an authentic dataset laid out as one score table plus one
    image folder (`read_authentic` over `data_dir/file`).

    The reader takes `(data_dir, file=file, image_dir=image_dir,
    skip_bad=False)`: `file` the score table and `image_dir` the image
    folder, both relative to `data_dir` (pass a resized copy's folder as
    `image_dir`), and `skip_bad` logs and skips rows whose image is missing.
    """
    low, high = score_range

    def read(data_dir, file=file, image_dir=image_dir, skip_bad=False):
        path = require_file(os.path.join(data_dir, file), f"{title} score file")
        return read_authentic(
            path,
            name_column,
            score_column,
            score_range,
            os.path.join(data_dir, image_dir),
            skip_bad,
        )

    read.__doc__ = (
        f"Reads {title} (MOS in [{low:g}, {high:g}], higher is better).\n\n"
        + authentic_reader.__doc__.split("\n\n", 1)[1]
    )
    return read


def read_authentic(path, name_column, score_column, score_range, image_dir, skip_bad):
    """Records of an authentic dataset's score table: one row per image, which
    is its own reference, with a higher-is-better score.

    Args:
        path: str. The score file (CSV or spreadsheet).
        name_column, score_column: str. Columns of image names and scores.
        score_range: (low, high) of the native score.
        image_dir: str. Folder that the names are relative to.
        skip_bad: bool. Log and skip rows whose image is missing.
    """
    table = read_table(path, [name_column, score_column], dtype={name_column: str})
    records = []
    for i, row in enumerate(table.to_dict("records"), start=2):
        name = str(row[name_column]).strip()
        mos_raw = to_float(row[score_column], path, i)
        records.append(
            make_record(
                os.path.join(image_dir, name),
                scale_score(mos_raw, score_range),
                mos_raw,
                name,
            )
        )
    return check_images(records, path, skip_bad)
