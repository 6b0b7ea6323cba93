"""`tid2013`: the Tampere Image Database 2013.

Layout:
```
reference_images/I01.BMP .. I25.BMP
distorted_images/i01_01_1.bmp ..   # i<ref>_<type>_<level>.bmp
mos_with_names.txt                 # "<MOS> <name>" per line, MOS in [0, 9]
```
24 distortion types x 5 levels x 25 references = 3000 images. Names in the
score file and on disk differ in case for some images, so files are matched
case-insensitively.

Reference: N. Ponomarenko et al., "Image database TID2013: peculiarities,
results and perspectives", Signal Processing: Image Communication, 2015.
"""

import os
import re

from tfiqa.data.readers import shared
from tfiqa.data.readers.registry import READERS
from tfiqa.errors import DataError

TID2013_TYPES = (
    "additive_gaussian_noise",
    "color_noise",
    "spatially_correlated_noise",
    "masked_noise",
    "high_frequency_noise",
    "impulse_noise",
    "quantization_noise",
    "gaussian_blur",
    "image_denoising",
    "jpeg",
    "jpeg2000",
    "jpeg_transmission_errors",
    "jpeg2000_transmission_errors",
    "non_eccentricity_pattern_noise",
    "local_block_distortions",
    "mean_shift",
    "contrast_change",
    "color_saturation",
    "multiplicative_gaussian_noise",
    "comfort_noise",
    "lossy_compression_of_noisy_images",
    "color_quantization_dither",
    "chromatic_aberrations",
    "sparse_sampling_reconstruction",
)
_NAME = re.compile(r"^i(\d+)_(\d+)_(\d+)\.bmp$", re.IGNORECASE)


def parse_tid_name(name):
    """`i01_08_3.bmp` -> ("I01", "gaussian_blur", 3); None if it does not match."""
    match = _NAME.match(name)
    if not match:
        return None
    ref, kind, level = (int(g) for g in match.groups())
    if not 1 <= kind <= len(TID2013_TYPES):
        return None
    return f"I{ref:02d}", TID2013_TYPES[kind - 1], level


@READERS.register("tid2013")
def read_tid2013(data_dir, file="mos_with_names.txt", skip_bad=False):
    """Reads TID2013 (MOS in [0, 9], higher is better).

    Args:
        data_dir: str. The TID2013 folder.
        file: str. The score file.
        skip_bad: bool. Log and skip lines whose image is missing.
    """
    path = shared.require_file(os.path.join(data_dir, file), "TID2013 score file")
    folder = shared.CaseInsensitiveFolder(os.path.join(data_dir, "distorted_images"))
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DataError(
                    f"{path}, line {line_no}: expected '<MOS> <image name>'. "
                    f"Received: {line.strip()!r}"
                )
            mos_raw = shared.to_float(parts[0], path, line_no)
            parsed = parse_tid_name(parts[1])
            if parsed is None:
                raise DataError(
                    f"{path}, line {line_no}: image name is not of the form "
                    f"i<ref>_<type>_<level>.bmp. Received: {parts[1]!r}"
                )
            ref, distortion, level = parsed
            records.append(
                shared.make_record(
                    folder.path(parts[1]),
                    shared.scale_score(mos_raw, (0.0, 9.0)),
                    mos_raw,
                    ref,
                    distortion,
                    level,
                )
            )
    return shared.check_images(records, path, skip_bad)
