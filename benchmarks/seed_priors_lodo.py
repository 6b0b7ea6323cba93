"""The seed methods' quality priors on cached features, leave one distortion out.

Stage `cache`: fills the distorted-feature cache (frozen ImageNet
EfficientNet-Lite0, mean+std pooling of P2..P5, one centre crop per source).
Stage `all`: then trains and scores every prior.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script  # noqa: E402

TRAIN_FOLDERS = ("BSDS500/train", "CSun_Hays80")
VAL_FOLDERS = ("BSDS500/test", "Kodak24", "McMaster")


def sources(data_dir, folders, count, seed=0):
    """`count` source paths drawn (seeded) from `folders` of pristine/."""
    from tfiqa.data.pristine import list_images

    paths = sorted(
        str(p)
        for folder in folders
        for p in list_images(os.path.join(data_dir, "pristine", folder))
    )
    order = np.random.default_rng(seed).permutation(len(paths))
    return [paths[i] for i in order[:count]]


def feature_rows(args):
    """(train rows, val rows, cache) filled in interleaved order, so that an
    interrupted run has cached both sides alike."""
    import logging

    from tfiqa.distortions import distortion_set
    from tfiqa.priors import DistortedFeatureCache, lite0_extractor

    logging.getLogger("tfiqa.priors").setLevel(logging.INFO)
    logging.basicConfig(format="%(asctime)s %(message)s")
    data_dir = os.path.abspath(args.data_dir)
    train = sources(data_dir, TRAIN_FOLDERS, args.train_sources)
    val = sources(data_dir, VAL_FOLDERS, args.val_sources)
    extract, key = lite0_extractor(args.crop_size)
    cache = DistortedFeatureCache(
        args.out, extract, key, distortion_set("kadid"), crop_size=args.crop_size
    )
    order = [p for pair in zip(train, val, strict=False) for p in pair]
    order += train[len(val) :] + val[len(train) :]
    cache.features(order, log_every=5)
    return cache.features(train), cache.features(val), cache


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    train, val, cache = feature_rows(args)
    print(f"cached: train {train.shape}, val {val.shape} in {cache.folder}")
    if args.stage == "cache":
        return


if __name__ == "__main__":
    script(__file__)
