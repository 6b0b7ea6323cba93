"""`tfiqa distort`: writes a KADID-style dataset of distorted pristine images.

Layout of the output folder (paths in the CSV are relative to it):

    refs/<ref>.png                       the pristine images, as PNG
    images/<ref>_<type>_<level>.png      every distorted image (lossless PNG)
    distortions.csv                      image,ref,distortion,level[,pseudo_mos]

The CSV is removed when a run starts and written last, atomically, so a
folder with a `distortions.csv` is always complete. The seed of each (image,
type) is derived from `seed` and the names, so one image's output does not
depend on which other images or types are in the run.
"""

import csv
import io
import os
import zlib

from tfiqa.errors import ConfigError

CSV_NAME = "distortions.csv"


def parse_levels(text):
    """ "1-5", "1,3,5" or "2" -> sorted tuple of distinct ints in 1..5."""
    text = str(text).strip()
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            levels = list(range(lo, hi + 1))
        else:
            levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or any(lv < 1 or lv > 5 for lv in levels):
        raise ConfigError(
            f"--levels must be a range like 1-5 or a list like 1,3,5 within 1..5. "
            f"Received: {text!r}"
        )
    return tuple(sorted(set(levels)))


def check_folders(input_dir, output_dir):
    src = os.path.realpath(input_dir)
    dst = os.path.realpath(output_dir)
    if dst == src or dst.startswith(src.rstrip(os.sep) + os.sep):
        raise ConfigError(
            "--output must not be inside --input (outputs would be read as "
            f"inputs next time). Received: --input {input_dir} --output {output_dir}"
        )


def type_seed(seed, ref, name):
    """A stable per-(image, type) seed pair."""
    return [int(seed) & 0x7FFFFFFF, zlib.crc32(f"{ref}/{name}".encode()) & 0x7FFFFFFF]


def _ref_ids(paths):
    """Unique, file-name-safe ids from file stems (suffixed on clashes)."""
    ids, seen = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        ref, k = stem, 1
        while ref in seen:
            k += 1
            ref = f"{stem}_{k}"
        seen.add(ref)
        ids.append(ref)
    return ids


def _compiled(name, level):
    """One traced graph per (type, level), reused across images."""
    import tensorflow as tf

    from tfiqa.distortions.registry import apply_distortion

    @tf.function(reduce_retracing=True)
    def run(image, seed):
        return apply_distortion(name, image, level, seed)

    return run


def _save_png(array, path):
    from PIL import Image

    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _write_variants(output_dir, pixels, ref, names, levels, graphs, seed, fr, bar):
    """Writes every type and level of one image; returns its index rows
    (with an MS-SSIM `pseudo_mos` when `fr`)."""
    import tensorflow as tf

    from tfiqa.distortions.measures import pseudo_mos
    from tfiqa.distortions.ops import to_uint8

    image = tf.constant(pixels)
    reference = tf.cast(image, tf.float32) / 255.0
    rows = []
    for name in names:
        s = tf.constant(type_seed(seed, ref, name), tf.int32)
        for level in levels:
            out8 = to_uint8(graphs[(name, level)](image, s)).numpy()
            rel = f"images/{ref}_{name}_{level}.png"
            _save_png(out8, os.path.join(output_dir, rel))
            row = {
                "image": rel,
                "ref": f"refs/{ref}.png",
                "distortion": name,
                "level": level,
            }
            if fr:
                value = pseudo_mos(reference, tf.constant(out8, tf.float32) / 255.0)
                row["pseudo_mos"] = f"{float(value):.6f}"
            rows.append(row)
            bar.add(1)
    return rows


def _write_index(csv_path, rows, pseudo_mos):
    from tfiqa.files import write_text_atomic

    columns = ["image", "ref", "distortion", "level"] + (
        ["pseudo_mos"] if pseudo_mos else []
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(csv_path, buffer.getvalue())


def distort_folder(
    input_dir,
    output_dir,
    distortion_set="kadid",
    types=None,
    levels=(1, 2, 3, 4, 5),
    seed=0,
    pseudo_mos=False,
    preview=None,
    verbose=1,
):
    """Distorts every image of `input_dir` into `output_dir` (see module doc).

    Args:
        input_dir: str. Folder of pristine images (searched recursively).
        output_dir: str. Created if needed; must not lie inside `input_dir`.
        distortion_set: str. "kadid" or "live"; used when `types` is empty.
        types: list of str; default every type of the set (JPEG2000 included).
        levels: ints in 1..5.
        seed: int.
        pseudo_mos: bool. Add an MS-SSIM-based `pseudo_mos` column.
        preview: optional str. Also write a contact sheet of the first image.
        verbose: int. 0 hides the progress bar (see `tfiqa.progress`).

    Returns:
        dict with "images" (distorted images written), "csv" and "preview".
    """
    from tfiqa.data.image_io import load_image
    from tfiqa.data.pipeline import check_records
    from tfiqa.data.pristine import list_images
    from tfiqa.distortions import DISTORTIONS
    from tfiqa.distortions import distortion_set as set_types
    from tfiqa.distortions.preview import contact_sheet
    from tfiqa.progress import progress

    check_folders(input_dir, output_dir)
    names = list(types) if types else set_types(distortion_set)
    for name in names:
        DISTORTIONS.get(name)
    levels = tuple(levels)
    paths = list_images(input_dir)
    # Fail on an unreadable file before writing anything.
    check_records([{"image_path": p} for p in paths], crop_size=1)
    refs = _ref_ids(paths)

    csv_path = os.path.join(output_dir, CSV_NAME)
    os.makedirs(os.path.join(output_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(output_dir, "refs"), exist_ok=True)
    if os.path.exists(csv_path):
        os.remove(csv_path)

    graphs = {(n, lv): _compiled(n, lv) for n in names for lv in levels}
    rows = []
    preview_path = None
    total = len(paths) * len(names) * len(levels)
    with progress(total, "Distorting", verbose, unit="image") as bar:
        for index, (path, ref) in enumerate(zip(paths, refs, strict=True)):
            pixels = load_image(path)
            ref_rel = f"refs/{ref}.png"
            _save_png(pixels, os.path.join(output_dir, ref_rel))
            if preview and index == 0:
                preview_path = contact_sheet(
                    pixels,
                    names,
                    levels,
                    lambda n, r=ref: type_seed(seed, r, n),
                    preview,
                )
            rows += _write_variants(
                output_dir, pixels, ref, names, levels, graphs, seed, pseudo_mos, bar
            )
    _write_index(csv_path, rows, pseudo_mos)
    return {"images": len(rows), "csv": csv_path, "preview": preview_path}
