"""Row checks shared by the Beam tests."""

import csv
import glob

from tfiqa.csv_names import image_path

# `tfiqa predict` and the pipeline must agree to 1e-6; CSV values carry 6
# decimals, so two equal scores may differ by one unit in the last one.
TOLERANCE = 1e-6
CSV_TOLERANCE = 1e-6 + 1e-12


def read_csv(*paths):
    """Rows of CSV files (every shard has its own header)."""
    rows = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            rows.extend(csv.DictReader(f))
    for row in rows:
        row["score"] = float(row["score"]) if row["score"] else None
        row["image"] = image_path(row["image"])
        row["error"] = image_path(row["error"])
    return rows


def read_shards(prefix):
    return read_csv(*sorted(glob.glob(f"{glob.escape(prefix)}-*-of-*.csv")))


def assert_same_rows(actual, expected, tolerance=TOLERANCE):
    """One row per expected image, the same error text, scores within
    `tolerance`; rows are dicts image/score/error, in any order."""
    actual = list(actual)
    by_image = {row["image"]: row for row in actual}
    assert len(by_image) == len(actual), "an image has two rows"
    wanted = {row["image"] for row in expected}
    assert set(by_image) == wanted, (set(by_image) - wanted, wanted - set(by_image))
    for want in expected:
        got = by_image[want["image"]]
        assert got["error"] == want["error"], (got, want)
        if want["score"] is None:
            assert got["score"] is None, (got, want)
        else:
            assert got["score"] is not None, (got, want)
            diff = abs(got["score"] - want["score"])
            assert diff <= tolerance, (got, want, diff)
