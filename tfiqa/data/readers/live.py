"""`live`: LIVE Image Quality Assessment Database, Release 2.

Layout (as distributed in databaserelease2.zip):
```
refimgs/*.bmp
jp2k/img1..227.bmp  jpeg/img1..233.bmp  wn/  gblur/  fastfading/ (img1..174.bmp)
dmos_realigned.mat   # dmos_new (1, 982), dmos_std (1, 982), orgs (1, 982)
refnames_all.mat     # refnames_all: (1, 982) cell of reference file names
```
The 982 entries follow the folder order above. `orgs == 1` marks the 203
copies of reference images inside the distortion folders (DMOS 0); they are
dropped by default, leaving the 779 distorted images.

Reference: H.R. Sheikh, M.F. Sabir, A.C. Bovik, "A statistical evaluation of
recent full reference image quality assessment algorithms", IEEE TIP 2006.
"""

import os

import numpy as np

from tfiqa.data.readers import shared
from tfiqa.data.readers.registry import READERS
from tfiqa.errors import DataError

LIVE_FOLDERS = (
    ("jp2k", 227),
    ("jpeg", 233),
    ("wn", 174),
    ("gblur", 174),
    ("fastfading", 174),
)
# Realigned DMOS is nominally 0 (reference quality) .. 100; a few scores fall
# slightly outside and are clipped in `mos` (kept as is in `mos_raw`).
LIVE_DMOS_RANGE = (0.0, 100.0)


@READERS.register("live")
def read_live(data_dir, include_originals=False, skip_bad=False):
    """Reads LIVE Release 2 (realigned DMOS, lower is better -> flipped).

    Args:
        data_dir: str. The `databaserelease2` folder.
        include_originals: bool. Keep the reference copies (`orgs == 1`) as
            level-0 records with DMOS 0.
        skip_bad: bool. Log and skip entries whose image is missing.
    """
    dmos_path = shared.require_file(
        os.path.join(data_dir, "dmos_realigned.mat"), "LIVE score file"
    )
    names_path = shared.require_file(
        os.path.join(data_dir, "refnames_all.mat"), "LIVE reference names file"
    )
    dmos = np.asarray(shared.load_mat(dmos_path, "dmos_new"), dtype=np.float64).ravel()
    orgs = np.asarray(shared.load_mat(dmos_path, "orgs")).ravel().astype(int)
    refnames = shared.mat_strings(shared.load_mat(names_path, "refnames_all"))
    total = sum(n for _, n in LIVE_FOLDERS)
    if not len(dmos) == len(orgs) == len(refnames) == total:
        raise DataError(
            f"LIVE score files must list {total} images (dmos_new, orgs, "
            f"refnames_all). Received: {len(dmos)}, {len(orgs)}, {len(refnames)} "
            f"in {dmos_path} and {names_path}"
        )
    images = [
        (folder, f"img{i}.bmp") for folder, n in LIVE_FOLDERS for i in range(1, n + 1)
    ]
    records = []
    for (folder, name), score, is_org, ref in zip(
        images, dmos, orgs, refnames, strict=True
    ):
        if is_org and not include_originals:
            continue
        records.append(
            shared.make_record(
                os.path.join(data_dir, folder, name),
                shared.scale_score(score, LIVE_DMOS_RANGE, higher_is_better=False),
                score,
                os.path.splitext(ref)[0],
                "" if is_org else folder,
                0,
            )
        )
    return shared.check_images(records, dmos_path, skip_bad)
