"""`livec`: LIVE In the Wild Image Quality Challenge database.

Layout:
```
Images/*.JPG (+ Images/trainingImages/)
Data/AllImages_release.mat   # AllImages_release: (1169, 1) cell of names
Data/AllMOS_release.mat      # AllMOS_release: (1, 1169) MOS in [0, 100]
```
The first 7 entries are the practice images shown to observers before the
study; they are dropped, leaving the 1,162 test images.

Reference: D. Ghadiyaram, A.C. Bovik, "Massive online crowdsourced study of
subjective and objective picture quality", IEEE TIP 2016.
"""

import os

import numpy as np

from tfiqa.data.readers import shared
from tfiqa.data.readers.registry import READERS
from tfiqa.errors import DataError

LIVEC_TRAINING_IMAGES = 7


@READERS.register("livec")
def read_livec(data_dir, skip_bad=False):
    """Reads LIVE Challenge (MOS in [0, 100], higher is better).

    Args:
        data_dir: str. The ChallengeDB_release folder.
        skip_bad: bool. Log and skip entries whose image is missing.
    """
    names_path = shared.require_file(
        os.path.join(data_dir, "Data", "AllImages_release.mat"),
        "LIVE Challenge image list",
    )
    mos_path = shared.require_file(
        os.path.join(data_dir, "Data", "AllMOS_release.mat"),
        "LIVE Challenge score file",
    )
    names = shared.mat_strings(shared.load_mat(names_path, "AllImages_release"))
    mos = np.asarray(
        shared.load_mat(mos_path, "AllMOS_release"), dtype=np.float64
    ).ravel()
    if len(names) != len(mos):
        raise DataError(
            f"{names_path} and {mos_path} must list the same number of images. "
            f"Received: {len(names)} names, {len(mos)} scores"
        )
    records = [
        shared.make_record(
            os.path.join(data_dir, "Images", name),
            shared.scale_score(score, (0.0, 100.0)),
            score,
            name,
        )
        for name, score in list(zip(names, mos, strict=True))[LIVEC_TRAINING_IMAGES:]
    ]
    return shared.check_images(records, mos_path, skip_bad)
