"""A pseudo-MOS dataset synthesised from pristine images (`distorted` layout).

Used when fine-tuning has no MOS data of its own (`data.dataset: distorted`
with no `data.dataset_dir`): labels come from MS-SSIM against the pristine
image (`tfiqa.distortions.measures.pseudo_mos`).
"""

import os

import numpy as np

from tfiqa.data.split_record import source_id
from tfiqa.files import write_text_atomic

MAX_SYNTHETIC_SIDE = 256


def _center_square(image, side):
    h, w = image.shape[:2]
    side = min(side, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def synthesize_mos_set(pristine_paths, folder, types, levels, seed, verbose=1):
    """Writes distorted copies with MS-SSIM pseudo-MOS labels (`distorted` layout).

    Each pristine image (centre square of at most 256 px) is written as
    level 0 with label 1.0, then once per type and level with the pseudo-MOS
    of the distorted copy against it. The index `distortions.csv` is written
    last, so an interrupted run regenerates the set.

    Args:
        pristine_paths: list of str. The pristine images.
        folder: str. Output folder (`images/` and `distortions.csv`).
        types: list of str. Distortion types.
        levels: list of int. Levels in 1..5.
        seed: int.
        verbose: int. 0 hides the progress bar (see `tfiqa.progress`).

    Returns:
        The folder, readable with `read_dataset("distorted", folder)`.
    """
    import tensorflow as tf
    from PIL import Image

    from tfiqa.data.image_io import load_image
    from tfiqa.distortions import apply_distortion
    from tfiqa.distortions.measures import pseudo_mos
    from tfiqa.distortions.ops import to_uint8
    from tfiqa.progress import progress

    index = os.path.join(folder, "distortions.csv")
    if os.path.isfile(index):
        return folder
    # Traced once per image size: MS-SSIM eagerly costs several times more.
    label_fn = tf.function(pseudo_mos, reduce_retracing=True)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    rows = ["image,ref,distortion,level,pseudo_mos"]
    total = len(pristine_paths) * len(types) * len(levels)
    bar = progress(total, "Synthesising pseudo-MOS labels", verbose, unit="image")
    for i, path in enumerate(pristine_paths):
        ref = source_id(path)
        image = _center_square(load_image(path), MAX_SYNTHETIC_SIDE)
        reference = image.astype(np.float32) / 255.0
        name = f"images/{ref}.png"
        Image.fromarray(image).save(os.path.join(folder, name))
        rows.append(f"{name},{ref},,0,1.0")
        for t, dtype in enumerate(types):
            for level in levels:
                distorted = apply_distortion(
                    dtype, reference, int(level), seed=[seed, i * 1000 + t * 10 + level]
                )
                label = float(label_fn(reference, distorted))
                out = to_uint8(distorted).numpy()
                name = f"images/{ref}_{dtype}_{level}.png"
                Image.fromarray(out).save(os.path.join(folder, name))
                rows.append(f"{name},{ref},{dtype},{level},{label:.6f}")
                bar.add(1)
    write_text_atomic(index, "\n".join(rows) + "\n")
    return folder
