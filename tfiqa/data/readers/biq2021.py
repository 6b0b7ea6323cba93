"""`biq2021`: BIQ2021 blind image quality database.

Layout (as in the official repository):
```
Images/ss01 (1).jpg ..
Train.csv, Test.csv   # "Image Name,MOS"; MOS scaled to [0, 1]
# (older copies name them "Train (Images and MOS).csv", "Test (...).csv")
```
The MOS was rescaled by the authors; a few values are slightly negative
(e.g. -0.028); `mos` clips them to [0, 1], `mos_raw` keeps them. Some files
named `.jpg` are multi-picture (MPO) JPEGs; `load_image` handles them.

Reference: N. Ahmed, S. Asif, "BIQ2021: a large-scale blind image quality
assessment database", Journal of Electronic Imaging, 2022.
"""

import os

from tfiqa.data.readers import shared
from tfiqa.data.readers.duplicates import DEFAULT_MIN_SIMILARITY, group_near_duplicates
from tfiqa.data.readers.registry import READERS
from tfiqa.errors import ConfigError, DataError

BIQ2021_FILES = {
    "train": ("Train.csv", "Train (Images and MOS).csv"),
    "test": ("Test.csv", "Test (Images and MOS).csv"),
}


def _find(data_dir, part):
    for name in BIQ2021_FILES[part]:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise DataError(
        f"BIQ2021 {part} score file not found in {data_dir}. Expected one of: "
        f"{', '.join(BIQ2021_FILES[part])}. Received: data_dir={data_dir}"
    )


@READERS.register("biq2021")
def read_biq2021(
    data_dir,
    split="all",
    image_dir="Images",
    skip_bad=False,
    group_duplicates=True,
    duplicate_similarity=DEFAULT_MIN_SIMILARITY,
):
    """Reads BIQ2021 from its official train/test CSVs (MOS in [0, 1]).

    Args:
        data_dir: str. The BIQ2021 folder.
        split: str. "train", "test" or "all" (train then test); read
            "train" and "test" separately to keep the official split.
        image_dir: str. Image folder relative to `data_dir`.
        skip_bad: bool. Log and skip rows whose image is missing.
        group_duplicates, duplicate_similarity: near-duplicate grouping, as
            in the `csv` reader (`tfiqa.data.readers.generic_csv.read_csv`).
    """
    if split not in ("train", "test", "all"):
        raise ConfigError(
            f"BIQ2021 split must be 'train', 'test' or 'all'. Received: {split!r}"
        )
    parts = ("train", "test") if split == "all" else (split,)
    image_root = os.path.join(data_dir, image_dir)
    records = []
    for part in parts:
        records.extend(
            shared.read_authentic(
                _find(data_dir, part),
                "Image Name",
                "MOS",
                (0.0, 1.0),
                image_root,
                skip_bad,
            )
        )
    if group_duplicates:
        records = group_near_duplicates(records, duplicate_similarity)
    return records
