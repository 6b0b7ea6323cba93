"""`koniq10k`: KonIQ-10k in-the-wild images.

Layout:
```
1024x768/<image_name>.jpg
koniq10k_scores_and_distributions.csv
    # image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore (MOS in [1, 5])
```

Reference: V. Hosu, H. Lin, T. Sziranyi, D. Saupe, "KonIQ-10k: An ecologically
valid database for deep learning of blind image quality assessment", IEEE TIP
2020.
"""

import os

from tfiqa.data.readers import base
from tfiqa.data.readers.registry import READERS


@READERS.register("koniq10k")
def read_koniq10k(
    data_dir,
    file="koniq10k_scores_and_distributions.csv",
    image_dir="1024x768",
    skip_bad=False,
):
    """Reads KonIQ-10k (MOS in [1, 5], higher is better).

    Args:
        data_dir: str. The koniq10k folder.
        file: str. The score CSV.
        image_dir: str. Image folder relative to `data_dir` ("512x384" for
            the half-size release).
        skip_bad: bool. Log and skip rows whose image is missing.
    """
    path = base.require_file(os.path.join(data_dir, file), "KonIQ-10k score file")
    image_root = os.path.join(data_dir, image_dir)
    return base.read_authentic(
        path, "image_name", "MOS", (1.0, 5.0), image_root, skip_bad
    )
