"""File handling for `tfiqa predict`: expand folders, score, format the CSV.

A file that cannot be read is reported in the CSV's `error` column and the
other images are still scored. Writing to an output file, resumably, is
`tfiqa.inference.prediction_writer`.

The CSV is always valid UTF-8: names (and error texts) go through
`tfiqa.csv_name`, which escapes undecodable bytes as `\\xHH` and a
backslash as two; `tfiqa.image_path` maps a name back to its file. Fields
are quoted whenever they hold a comma, quote or line break.
"""

import csv
import io
import os
import sys

from tfiqa.csv_names import csv_name
from tfiqa.errors import DataError

CSV_COLUMNS = ("image", "score", "error")
ENCODING = {"encoding": "utf-8"}


def _image_extensions():
    from tfiqa.data.image_io import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def is_image_name(name):
    """Whether a file name is one a folder walk scores: an image extension,
    not hidden."""
    return name.lower().endswith(_image_extensions()) and not name.startswith(".")


def expand_inputs(inputs):
    """Files as given plus every image file under the given folders (recursive).

    Args:
        inputs: iterable of str. Image files and/or folders.

    Returns:
        list of str, folders' images sorted, duplicates dropped. A path that
        does not exist, or is not a regular file, is kept so that its error
        shows up in the results; so is a folder holding no images.

    Raises:
        DataError: nothing to score (no files, or folders without images).
    """
    extensions = _image_extensions()
    inputs = [os.fspath(item) for item in inputs]
    found, empty_folders = [], []
    for item in inputs:
        if os.path.isdir(item):
            images = []
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                images.extend(
                    os.path.join(root, name)
                    for name in sorted(files)
                    if is_image_name(name)
                )
            found.extend(images)
            if not images:
                empty_folders.append(item)
        else:
            found.append(item)
    if not found:
        raise DataError(
            f"No images ({', '.join(extensions)}) found. Received: {inputs}"
        )
    # A folder without images among other inputs (say one named x.jpg) gets
    # an error row instead of vanishing from the count.
    return list(dict.fromkeys(found + empty_folders))


def predict_files(
    scorer, paths, crops=None, full=False, batch_size=16, on_progress=None, sink=None
):
    """Scores image files, recording per-file errors instead of stopping.

    Args:
        scorer: `tfiqa.inference.Scorer`.
        paths: list of str. Image files.
        crops, full: see `Scorer.score`.
        batch_size: int. Images loaded and scored together.
        on_progress: callable(int) or None. Called with the number of images
            finished after each batch.
        sink: callable(list of rows) or None. Gets each batch's rows as soon
            as they are scored.

    Returns:
        list of dicts {"image": path, "score": float or None, "error": str}.
    """
    rows, batch = [], []
    for row in scorer.score_files(paths, crops, full, batch_size):
        batch.append({k: row[k] for k in CSV_COLUMNS})
        if len(batch) == batch_size:
            rows.extend(_flush(batch, sink, on_progress))
            batch = []
    rows.extend(_flush(batch, sink, on_progress))
    return rows


def _flush(batch, sink, on_progress):
    if batch and sink is not None:
        sink(batch)
    if batch and on_progress is not None:
        on_progress(len(batch))
    return batch


def _csv_text(rows, header=False):
    buffer = io.StringIO()
    for fields in ([CSV_COLUMNS] if header else []) + [_fields(r) for r in rows]:
        # The csv module only quotes "\r" when it ends its lines: quote it here.
        quoting = csv.QUOTE_ALL if any("\r" in f for f in fields) else csv.QUOTE_MINIMAL
        csv.writer(buffer, lineterminator="\n", quoting=quoting).writerow(fields)
    return buffer.getvalue()


def _fields(row):
    score = "" if row["score"] is None else f"{row['score']:.6f}"
    return [csv_name(row["image"]), score, csv_name(row["error"])]


def rows_to_csv(rows):
    """CSV text with the header image,score,error (score empty on error)."""
    return _csv_text(rows, header=True)


def csv_records(rows):
    """CSV text of `rows` without the header, each ending in a line break
    (one record can span lines: a name with a line break is quoted)."""
    return _csv_text(rows)


def echo_csv(rows):
    """Writes the CSV to stdout as UTF-8 (names escaped by `csv_name`)."""
    data = rows_to_csv(rows).encode(**ENCODING)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
