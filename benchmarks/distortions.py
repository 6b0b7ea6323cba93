"""Distortion throughput: distorted 224x224 crops per second through tf.data.

Per type: random crops of in-memory pristine images, one level per crop
(cycling 1..5), mapped in parallel (AUTOTUNE) and batched by 16, so the
figure is the distortion's own cost. Then the default ranking pipeline
(`ranking_dataset` with the fast KADID types, groups of pristine + 5
levels, `ranking.groups_per_batch` groups) including PNG/JPEG decoding from
disk: this is what the ranking trainer waits on.

Usage:
    .venv/bin/python benchmarks/distortions.py --data-dir ../shared/data
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import write_results  # noqa: E402


def _pristine_paths(data_dir, tmp):
    from tfiqa.data.pristine import generate_pristine, list_images

    folder = os.path.join(data_dir, "pristine", "Kodak24") if data_dir else ""
    if folder and os.path.isdir(folder):
        return list_images(folder), "Kodak24"
    generate_pristine(tmp, count=8, size=384, seed=0)
    return list_images(tmp), "generated 384x384"


def _rate(ds, crops_per_batch, seconds, warmup=2):
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(it)
        count += crops_per_batch
    return count / (time.perf_counter() - start)


def type_dataset(images, name, crop, batch=16):
    import tensorflow as tf

    from tfiqa.data.ranking import distort_one, random_crop, to_uint8
    from tfiqa.distortions.base import sub_seed

    stack = tf.constant(images)  # (n, H, W, 3) uint8

    def make(index):
        key = tf.cast(tf.stack([tf.constant(0, tf.int64), index]), tf.int32)
        image = stack[tf.cast(index % len(images), tf.int32)]
        level = tf.cast(index % 5, tf.int32) + 1
        patch = random_crop(image, crop, key)
        zero = tf.constant(0, tf.int32)
        return to_uint8(distort_one(patch, zero, level, sub_seed(key, 1), [name]))

    ds = tf.data.Dataset.counter().map(make, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default="", help="Folder holding pristine/Kodak24."
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="Timing per row.")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--types", default="", help="Comma list (default: kadid).")
    args = parser.parse_args()

    import numpy as np

    from tfiqa.config import RankingConfig
    from tfiqa.data.image_io import load_image
    from tfiqa.data.ranking import ranking_dataset
    from tfiqa.distortions import DISTORTIONS, distortion_set

    with tempfile.TemporaryDirectory() as tmp:
        paths, source = _pristine_paths(args.data_dir, tmp)
        # Same-size images for an in-memory stack: centre crops of 384.
        images = []
        for p in paths[:8]:
            im = load_image(p)
            h, w = im.shape[:2]
            s = min(h, w, 384)
            images.append(
                im[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
            )
        side = min(im.shape[0] for im in images)
        images = np.stack([im[:side, :side] for im in images])

        names = [t for t in args.types.split(",") if t] or distortion_set("kadid")
        rows = []
        for name in names:
            rate = _rate(type_dataset(images, name, args.crop), 16, args.seconds)
            python_only = DISTORTIONS.get(name).python_only
            rows.append(
                {
                    "pipeline": name,
                    "python_only": "yes" if python_only else "",
                    "crops_per_s": rate,
                }
            )
            print(f"{name:30s} {rate:8.1f} crops/s", flush=True)

        groups = RankingConfig().groups_per_batch
        ds = ranking_dataset(paths, None, args.crop, groups_per_batch=groups, seed=0)
        per_batch = groups * 6
        rate = _rate(ds, per_batch, max(args.seconds * 3, 10.0))
        rows.append(
            {
                "pipeline": f"ranking_dataset (24 fast types, {groups} groups x 6, "
                f"{source} from disk)",
                "python_only": "",
                "crops_per_s": rate,
            }
        )
        print(f"ranking_dataset {rate:8.1f} crops/s", flush=True)

    notes = (
        f"Crops of {args.crop}x{args.crop}; per-type rows use in-memory images "
        "(distortion cost only), the last row decodes images from disk as the "
        "ranking trainer does. The 2 CPU cores were shared with other jobs "
        "while this ran, so figures are noisy lower bounds."
    )
    text = write_results(
        "distortions",
        rows,
        ["pipeline", "python_only", "crops_per_s"],
        "Distortion throughput (crops/s, tf.data, CPU)",
        notes,
    )
    print(text)


if __name__ == "__main__":
    main()
