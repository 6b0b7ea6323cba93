"""`distorted`: the folder written by `tfiqa distort`.

Layout:
```
distortions.csv   # image,ref,distortion,level[,pseudo_mos]
<image paths relative to the folder>
```
Level 0 is the pristine copy. Without a `pseudo_mos` column the quality
label is `1 - level / 5` (pristine 1.0, level 5 0.0).
"""

import os

from tfiqa.data.readers import shared
from tfiqa.data.readers.registry import READERS
from tfiqa.errors import DataError

MAX_LEVEL = 5


@READERS.register("distorted")
def read_distorted(data_dir, file="distortions.csv", skip_bad=False):
    """Reads synthetically distorted images with their levels.

    Args:
        data_dir: str. The `tfiqa distort --output` folder.
        file: str. The index CSV.
        skip_bad: bool. Log and skip rows whose image is missing.
    """
    path = shared.require_file(os.path.join(data_dir, file), "Distortion index")
    table = shared.read_table(
        path,
        ["image", "ref", "distortion", "level"],
        dtype={"image": str, "ref": str, "distortion": str},
        keep_default_na=False,
    )
    has_pseudo = "pseudo_mos" in table.columns
    records = []
    for i, row in enumerate(table.to_dict("records"), start=2):
        level_value = shared.to_float(row["level"], path, i)
        if not level_value.is_integer() or not 0 <= level_value <= MAX_LEVEL:
            raise DataError(
                f"{path}, row {i}: level must be an integer 0..{MAX_LEVEL}. "
                f"Received: {row['level']!r}"
            )
        level = int(level_value)
        pseudo = row["pseudo_mos"] if has_pseudo else ""
        if has_pseudo and not (isinstance(pseudo, str) and not pseudo.strip()):
            mos_raw = shared.to_float(pseudo, path, i)
            if not 0.0 <= mos_raw <= 1.0:
                raise DataError(
                    f"{path}, row {i}: pseudo_mos must be in [0, 1]. "
                    f"Received: {mos_raw}"
                )
            mos = mos_raw
        else:
            mos_raw = float(level)
            mos = shared.scale_score(level, (0.0, MAX_LEVEL), higher_is_better=False)
        distortion = "" if level == 0 else str(row["distortion"]).strip()
        records.append(
            shared.make_record(
                os.path.join(data_dir, str(row["image"]).strip()),
                mos,
                mos_raw,
                str(row["ref"]).strip(),
                distortion,
                level,
            )
        )
    return shared.check_images(records, path, skip_bad)
