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

from tfiqa.data.readers import shared
from tfiqa.data.readers.registry import READERS

read_spaq = READERS.register("spaq")(
    shared.authentic_reader(
        "SPAQ",
        file="Annotations/MOS and Image attribute scores.xlsx",
        image_dir="TestImage",
        name_column="Image name",
        score_column="MOS",
        score_range=(0.0, 100.0),
    )
)
