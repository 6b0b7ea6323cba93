"""`kadid10k`: the Konstanz artificially distorted image database.

Layout:
```
images/I01.png, images/I01_01_01.png ..   # I<ref>_<type>_<level>.png
dmos.csv   # dist_img,ref_img,dmos,var (dmos is a 1..5 MOS, higher is better)
```
81 references x 25 distortion types x 5 levels = 10,125 images.

Reference: H. Lin, V. Hosu, D. Saupe, "KADID-10k: A Large-scale Artificially
Distorted IQA Database", QoMEX 2019.
"""

import os
import re

from tfiqa.data.readers import shared
from tfiqa.data.readers.registry import READERS
from tfiqa.distortion_names import KADID10K_TYPES
from tfiqa.errors import DataError

_NAME = re.compile(r"^(I\d+)_(\d+)_(\d+)\.\w+$", re.IGNORECASE)


@READERS.register("kadid10k")
def read_kadid10k(data_dir, file="dmos.csv", image_dir="images", skip_bad=False):
    """Reads KADID-10k (`dmos` column is a MOS in [1, 5], higher is better).

    Args:
        data_dir: str. The kadid10k folder.
        file: str. The score CSV.
        image_dir: str. Folder of the images, relative to `data_dir`.
        skip_bad: bool. Log and skip rows whose image is missing.
    """
    path = shared.require_file(os.path.join(data_dir, file), "KADID-10k score file")
    table = shared.read_table(path, ["dist_img", "ref_img", "dmos"])
    records = []
    for i, row in enumerate(table.to_dict("records"), start=2):
        name = str(row["dist_img"]).strip()
        match = _NAME.match(name)
        if not match:
            raise DataError(
                f"{path}, row {i}: dist_img is not of the form "
                f"I<ref>_<type>_<level>.png. Received: {name!r}"
            )
        kind, level = int(match.group(2)), int(match.group(3))
        if not 1 <= kind <= len(KADID10K_TYPES):
            raise DataError(
                f"{path}, row {i}: distortion type must be 01..25. Received: {name!r}"
            )
        mos_raw = shared.to_float(row["dmos"], path, i)
        records.append(
            shared.make_record(
                os.path.join(data_dir, image_dir, name),
                shared.scale_score(mos_raw, (1.0, 5.0)),
                mos_raw,
                os.path.splitext(str(row["ref_img"]).strip())[0],
                KADID10K_TYPES[kind - 1],
                level,
            )
        )
    return shared.check_images(records, path, skip_bad)
