"""`spaq`: Smartphone Photography Attribute and Quality database.

Layout:
```
TestImage/00001.jpg ..
Annotations/MOS and Image attribute scores.xlsx
    # Image name, MOS, Brightness, Colorfulness, Contrast, Noisiness,
    # Sharpness (MOS in [0, 100])
```
Images are full-resolution smartphone photos (often 4000x3000); many works
downscale them once before training, which is an offline step (pass the
resized folder as `image_dir`).

Reference: Y. Fang, H. Zhu, Y. Zeng, K. Ma, Z. Wang, "Perceptual quality
assessment of smartphone photography", CVPR 2020.
"""

import os

from tfiqa.data.readers import base
from tfiqa.data.readers.registry import READERS


@READERS.register("spaq")
def read_spaq(
    data_dir,
    file="Annotations/MOS and Image attribute scores.xlsx",
    image_dir="TestImage",
    skip_bad=False,
):
    """Reads SPAQ (MOS in [0, 100], higher is better).

    Args:
        data_dir: str. The SPAQ folder.
        file: str. The annotation spreadsheet.
        image_dir: str. Image folder relative to `data_dir`.
        skip_bad: bool. Log and skip rows whose image is missing.
    """
    path = base.require_file(os.path.join(data_dir, file), "SPAQ score file")
    image_root = os.path.join(data_dir, image_dir)
    return base.read_authentic(
        path, "Image name", "MOS", (0.0, 100.0), image_root, skip_bad
    )
