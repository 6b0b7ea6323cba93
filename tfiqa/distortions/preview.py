"""Contact sheet: one row per distortion type, pristine + one column per level.

Every tile is the same centre crop of one image, distorted at native
resolution (never rescaled, so noise, blocking and ringing stay visible).
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tfiqa.files import atomic_path

LABEL_WIDTH = 230
HEADER_HEIGHT = 28
GAP = 4


def _font(size=15):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def centre_crop(image, size):
    h, w = image.shape[:2]
    size = min(size, h, w)
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


def contact_sheet(image, types, levels, seed, path, tile=192, distort=None):
    """Writes a PNG grid of `types` x (pristine + `levels`) tiles to `path`.

    Args:
        image: uint8 (H, W, 3). The source image.
        types: list of str distortion names (rows).
        levels: ints in 1..5 (columns after the pristine one).
        seed: int or a function `type_name -> seed`.
        path: str. Output PNG, written atomically.
        tile: int. Side of the centre crop shown in every cell.
        distort: optional `(name, crop, level, seed) -> uint8 crop`; defaults
            to `apply_distortion`.
    """
    from tfiqa.distortions.registry import apply_distortion

    if distort is None:

        def distort(name, crop, level, s):
            out = apply_distortion(name, crop, level, s).numpy()
            return np.round(out * 255.0).astype(np.uint8)

    crop = centre_crop(np.asarray(image, np.uint8), tile)
    t = crop.shape[0]
    columns = ["pristine"] + [f"level {lv}" for lv in levels]
    width = LABEL_WIDTH + len(columns) * (t + GAP)
    height = HEADER_HEIGHT + len(types) * (t + GAP)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font()
    for j, name in enumerate(columns):
        draw.text((LABEL_WIDTH + j * (t + GAP) + 4, 6), name, fill=(0, 0, 0), font=font)
    for i, name in enumerate(types):
        y = HEADER_HEIGHT + i * (t + GAP)
        draw.text((6, y + t // 2 - 8), name, fill=(0, 0, 0), font=font)
        type_seed = seed(name) if callable(seed) else seed
        tiles = [crop] + [distort(name, crop, lv, type_seed) for lv in levels]
        for j, cell in enumerate(tiles):
            sheet.paste(Image.fromarray(cell), (LABEL_WIDTH + j * (t + GAP), y))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
