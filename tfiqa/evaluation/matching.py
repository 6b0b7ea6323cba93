"""Reading a predictions CSV and matching its rows to dataset records.

A predictions CSV has the columns `image,score` and optionally `error` (what
`tfiqa predict` writes); a row with a non-empty `error` is an image that could
not be scored. Names are read back with `tfiqa.image_path` (the escape
`tfiqa predict` writes undecodable bytes with). Predictions are matched to
dataset records by image path: absolute, relative to the dataset folder (or
the current folder), or a bare file name when exactly one record has that
name.
"""

import csv
import dataclasses
import math
import os

from tfiqa.csv_names import image_path
from tfiqa.errors import DataError
from tfiqa.files import file_kind

MAX_EXAMPLES = 3


@dataclasses.dataclass
class Predictions:
    """Rows of a predictions CSV.

    Attributes:
        scores: dict image (as written in the CSV) -> float score.
        failed: dict image -> error message, for rows that could not be scored.
        path: str, the CSV file.
    """

    scores: dict
    failed: dict
    path: str = ""


@dataclasses.dataclass
class Match:
    """Predictions paired with records.

    Attributes:
        pairs: list of (record, score) for matched images, in record order.
        unmatched: list of (image, reason) for predictions matching no record.
        missing: list of records without a prediction (failed ones excluded).
        failed: list of records whose prediction row has an error.
    """

    pairs: list
    unmatched: list
    missing: list
    failed: list


def read_predictions(path):
    """Reads a predictions CSV (`image,score[,error]`).

    Names (and errors) are read back with `tfiqa.image_path`, the inverse of
    the escape `tfiqa predict` writes them with.

    Raises:
        DataError: missing file or not a regular file (saying what it is),
            missing columns, a bad or non-finite score, a name holding a NUL
            byte, or an image listed twice.
    """
    try:
        kind = file_kind(os.stat(path).st_mode)
    except FileNotFoundError:
        broken = " (a broken symbolic link)" if os.path.islink(path) else ""
        raise DataError(
            f"Predictions CSV not found{broken}. Received: {path}"
        ) from None
    except OSError as e:
        raise DataError(f"Cannot read predictions CSV {path}: {e.strerror}") from None
    if kind is not None:
        raise DataError(f"Predictions CSV {path} is {kind}, not a file.")
    try:
        return _read_predictions(path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"Predictions CSV {path} is not a readable UTF-8 CSV. Received: {e}"
        ) from None


def _read_predictions(path):
    scores, failed = {}, {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        for needed in ("image", "score"):
            if needed not in columns:
                raise DataError(
                    f"Predictions CSV {path} has no '{needed}' column (expected "
                    f"image,score[,error]). Received: columns={columns}"
                )
        # Line numbers count the header as line 1, as editors show.
        for line, row in enumerate(reader, start=2):
            image = image_path((row.get("image") or "").strip())
            if not image:
                raise DataError(f"Predictions CSV {path}, line {line}: empty image.")
            if "\0" in image:
                raise DataError(
                    f"Predictions CSV {path}, line {line}: image name holds a NUL "
                    f"byte, which no file name can. Received: image={image!r}"
                )
            if image in scores or image in failed:
                raise DataError(
                    f"Predictions CSV {path}, line {line}: image listed twice. "
                    f"Received: image={image!r}"
                )
            error = image_path((row.get("error") or "").strip())
            if error:
                failed[image] = error
                continue
            text = (row.get("score") or "").strip()
            try:
                score = float(text)
            except ValueError:
                score = math.nan
            if not math.isfinite(score):
                raise DataError(
                    f"Predictions CSV {path}, line {line}: score must be a finite "
                    f"number (or fill the error column). Received: score={text!r} "
                    f"for image={image!r}"
                )
            scores[image] = score
    return Predictions(scores, failed, path)


def _key(path):
    return os.path.normcase(os.path.realpath(path))


def _is_bare_name(image):
    return os.path.basename(image) == image and "/" not in image


def match_predictions(predictions, records, data_dir):
    """Pairs predictions with records by image path.

    Args:
        predictions: `Predictions`.
        records: list of record dicts (absolute `image_path`).
        data_dir: str, the dataset folder relative paths resolve against.

    Returns:
        `Match`.

    Raises:
        DataError: two prediction rows name the same record, or the dataset
            lists one image twice (its MOS would be ambiguous).
    """
    by_path = {}
    for i, record in enumerate(records):
        key = _key(record["image_path"])
        if key in by_path:
            raise DataError(
                "The dataset lists an image twice (which MOS is meant?). "
                f"Received: {record['image_path']}"
            )
        by_path[key] = i
    by_name = {}
    for i, record in enumerate(records):
        by_name.setdefault(os.path.basename(record["image_path"]), []).append(i)

    def locate(image):
        if os.path.isabs(image):
            candidates = [image]
        else:
            candidates = [os.path.join(data_dir, image), os.path.abspath(image)]
        for candidate in candidates:
            index = by_path.get(_key(candidate))
            if index is not None:
                return index, None
        if _is_bare_name(image):
            hits = by_name.get(image, [])
            if len(hits) == 1:
                return hits[0], None
            if hits:
                return None, f"file name shared by {len(hits)} records"
        return None, "no record with this path"

    taken = {}  # record index -> image as written
    score_of, failed_rows = {}, set()
    unmatched = []
    rows = [(image, score, False) for image, score in predictions.scores.items()]
    rows += [(image, None, True) for image in predictions.failed]
    for image, score, is_failed in rows:
        index, reason = locate(image)
        if index is None:
            unmatched.append((image, reason))
            continue
        if index in taken:
            raise DataError(
                f"Predictions CSV {predictions.path}: {taken[index]!r} and "
                f"{image!r} are the same image. Received: "
                f"{records[index]['image_path']}"
            )
        taken[index] = image
        if is_failed:
            failed_rows.add(index)
        else:
            score_of[index] = score
    pairs = [(r, score_of[i]) for i, r in enumerate(records) if i in score_of]
    missing = [r for i, r in enumerate(records) if i not in taken]
    failed = [r for i, r in enumerate(records) if i in failed_rows]
    return Match(pairs, unmatched, missing, failed)
