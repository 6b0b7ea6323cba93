"""`csv`: any CSV file with an image column and a score column."""

import os

from tfiqa.data.readers import shared
from tfiqa.data.readers.duplicates import DEFAULT_MIN_SIMILARITY, group_near_duplicates
from tfiqa.data.readers.registry import READERS
from tfiqa.errors import ConfigError, DataError


def _score_bounds(score_range):
    if score_range is None:
        return 0.0, 1.0
    if len(score_range) != 2 or float(score_range[0]) >= float(score_range[1]):
        raise ConfigError(
            f"score_range must be [lo, hi] with lo < hi. Received: {score_range}"
        )
    return float(score_range[0]), float(score_range[1])


def _check_in_range(raw, bounds, score_range, path, row, column):
    lo, hi = bounds
    if not lo - 1e-9 <= raw <= hi + 1e-9:
        hint = (
            "Set the reader option score_range to the scale of the scores"
            if score_range is None
            else "Check score_range"
        )
        raise DataError(
            f"Score file {path}, row {row}: score {raw} is outside "
            f"[{lo:g}, {hi:g}]. {hint}, e.g. score_range: [1, 5]. "
            f"Received: {column}={raw}"
        )


@READERS.register("csv")
def read_csv(
    data_dir,
    file="mos.csv",
    image_column="image",
    score_column="mos",
    ref_column=None,
    distortion_column=None,
    level_column=None,
    score_range=None,
    higher_is_better=True,
    image_dir=None,
    skip_bad=False,
    group_duplicates=True,
    duplicate_similarity=DEFAULT_MIN_SIMILARITY,
):
    """Reads a generic score CSV.

    Args:
        data_dir: str. Folder holding the CSV; relative paths resolve here.
        file: str. The CSV file, relative to `data_dir` (default "mos.csv").
        image_column: str. Column of image paths, relative to `image_dir`.
        score_column: str. Column of scores.
        ref_column: str or None. Column naming the source content of each
            image (needed for content-disjoint splits of synthetic datasets);
            without it each image is its own reference.
        distortion_column, level_column: str or None. Optional columns.
        score_range: [lo, hi] or None. The native score scale; None means the
            scores are already in [0, 1].
        higher_is_better: bool. False for DMOS-style scores.
        image_dir: str or None. Folder the image paths are relative to
            (default `data_dir`).
        skip_bad: bool. Log and skip rows whose image is missing.
        group_duplicates: bool. Give near-duplicate photos (the same image
            re-encoded or resized, burst shots) one `ref_id` so that splits
            keep them together (`tfiqa.data.readers.duplicates`); False
            keeps one reference per file.
        duplicate_similarity: float. Thumbnail (layout) correlation from
            which two files are candidates; their fine detail decides
            (default 0.95).

    Returns:
        list of records.

    Example:
    ```python
    records = read_dataset("csv", "data/biq2021-dev")  # mos.csv: image,mos
    ```
    """
    path = file if os.path.isabs(file) else os.path.join(data_dir, file)
    shared.require_file(path, "Score CSV")
    columns = [image_column, score_column]
    for extra in (ref_column, distortion_column, level_column):
        if extra:
            columns.append(extra)
    frame = shared.read_table(path, columns, dtype={image_column: str})
    lo, hi = _score_bounds(score_range)
    root = data_dir if image_dir is None else os.path.join(data_dir, image_dir)

    records = []
    # Row numbers in messages count the header as line 1, as editors show.
    for i, values in enumerate(frame.to_dict("records"), start=2):
        name = str(values[image_column]).strip()
        raw = shared.to_float(values[score_column], path, i)
        _check_in_range(raw, (lo, hi), score_range, path, i, score_column)
        ref = str(values[ref_column]).strip() if ref_column else name
        records.append(
            shared.make_record(
                os.path.join(root, name),
                shared.scale_score(raw, (lo, hi), higher_is_better),
                raw,
                ref,
                str(values[distortion_column]) if distortion_column else "",
                int(values[level_column]) if level_column else 0,
            )
        )
    records = shared.check_images(records, path, skip_bad)
    if group_duplicates:
        records = group_near_duplicates(records, duplicate_similarity)
    return records
