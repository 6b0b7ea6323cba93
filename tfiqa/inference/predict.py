"""File handling for `tfiqa predict`: expand folders, score, write a CSV.

A file that cannot be read is reported in the CSV's `error` column and the
other images are still scored.
"""

import csv
import io
import os

from tfiqa.errors import DataError, TfiqaError
from tfiqa.files import write_text_atomic

CSV_COLUMNS = ("image", "score", "error")


def _image_extensions():
    from tfiqa.data.image_io import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def expand_inputs(inputs):
    """Files as given plus every image file under the given folders (recursive).

    Args:
        inputs: iterable of str. Image files and/or folders.

    Returns:
        list of str, folders' images sorted, duplicates dropped. A path that
        does not exist is kept so that its error shows up in the results.

    Raises:
        DataError: nothing to score (no files, or folders without images).
    """
    extensions = _image_extensions()
    found = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(
                    os.path.join(root, name)
                    for name in sorted(files)
                    if name.lower().endswith(extensions) and not name.startswith(".")
                )
        else:
            found.append(item)
    paths = list(dict.fromkeys(found))
    if not paths:
        raise DataError(
            f"No images ({', '.join(extensions)}) found. Received: {list(inputs)}"
        )
    return paths


def _error_text(error):
    return str(error).replace("\n", " ").strip() or error.__class__.__name__


def predict_files(
    scorer, paths, crops=None, full=False, batch_size=16, on_progress=None
):
    """Scores image files, recording per-file errors instead of stopping.

    Args:
        scorer: `tfiqa.inference.Scorer`.
        paths: list of str. Image files.
        crops, full: see `Scorer.score`.
        batch_size: int. Images loaded and scored together.
        on_progress: callable(int) or None. Called with the number of images
            finished after each batch.

    Returns:
        list of dicts {"image": path, "score": float or None, "error": str}.
    """
    from tfiqa.data.image_io import load_image

    rows = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        results = {}
        images = {}
        for path in chunk:
            try:
                images[path] = load_image(path)
            except TfiqaError as e:
                results[path] = (None, _error_text(e))
        if images:
            try:
                scores = scorer.score(
                    list(images.values()), crops=crops, full=full, batch_size=batch_size
                )
                results.update(
                    (p, (float(s), "")) for p, s in zip(images, scores, strict=True)
                )
            except TfiqaError:
                # Find the culprit: score the images of this batch one by one.
                for path, image in images.items():
                    try:
                        score = scorer.score(image, crops=crops, full=full)[0]
                        results[path] = (float(score), "")
                    except TfiqaError as e:
                        results[path] = (None, _error_text(e))
        for path in chunk:
            score, error = results[path]
            rows.append({"image": path, "score": score, "error": error})
        if on_progress is not None:
            on_progress(len(chunk))
    return rows


def rows_to_csv(rows):
    """CSV text with the header image,score,error (score empty on error)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        score = "" if row["score"] is None else f"{row['score']:.6f}"
        writer.writerow([row["image"], score, row["error"]])
    return buffer.getvalue()


def write_predictions(rows, output):
    """Writes the rows as CSV to `output` atomically."""
    write_text_atomic(output, rows_to_csv(rows))
