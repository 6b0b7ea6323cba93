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

from tfiqa.data.readers import shared
from tfiqa.data.readers.registry import READERS

read_koniq10k = READERS.register("koniq10k")(
    shared.authentic_reader(
        "KonIQ-10k",
        file="koniq10k_scores_and_distributions.csv",
        image_dir="1024x768",  # "512x384" for the half-size release
        name_column="image_name",
        score_column="MOS",
        score_range=(1.0, 5.0),
    )
)
