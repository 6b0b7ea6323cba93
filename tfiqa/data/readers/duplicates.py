"""Near-duplicate photos share one `ref_id`, so no split can separate them.

Authentic MOS sets give every file its own reference, yet some hold the same
photo twice (re-encoded, resized or renamed) or a burst of nearly identical
shots. Splitting such a set by file would put a photo in training and its
twin in test. `group_near_duplicates` compares every image with its
candidates and merges the references of images that match:

1. candidates: images whose difference hashes (64 bits comparing
   neighbouring pixels of an 8 x 9 grayscale thumbnail, which re-encoding
   and mild resizing barely change) differ in at most `CANDIDATE_BITS` bits,
   found by multi-index hashing (the bits are cut into `CANDIDATE_BITS + 1`
   bands; two such hashes agree exactly on at least one band);
2. match: the correlation of their 32 x 32 grayscale thumbnails (mean
   removed, unit norm) is at least `min_similarity`. The hash alone is too
   coarse: dark scenes with one bright centre share most of their bits.

Reference: N. Krawetz, "Kind of like that" (dHash), 2013; Norouzi et al.,
"Fast search in Hamming space with multi-index hashing", CVPR 2012.
"""

import collections
import logging

import numpy as np

logger = logging.getLogger("tfiqa.data")

HASH_BITS = 64
CANDIDATE_BITS = 8
THUMB_SIDE = 32
# Re-encoded or resized copies score above 0.99, burst shots of one scene
# 0.95-0.99, different photos of similar layout below 0.9 (BIQ2021).
DEFAULT_MIN_SIMILARITY = 0.95


def image_signature(path):
    """(64-bit difference hash, normalised 32 x 32 thumbnail (1024,)) of an
    image file, or None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("L", (4 * THUMB_SIDE, 4 * THUMB_SIDE))  # fast JPEG decode
            gray = image.convert("L")
            small = gray.resize((9, 8), Image.Resampling.BILINEAR)
            thumb = gray.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    except (OSError, ValueError) as e:
        logger.warning("Cannot hash %s (%s); it keeps its own ref_id.", path, e)
        return None
    pixels = np.asarray(small, np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()  # (64,)
    vector = np.asarray(thumb, np.float32).ravel()
    vector -= vector.mean()
    vector /= np.linalg.norm(vector) + 1e-6
    return int(np.packbits(bits).view(">u8")[0]), vector


def candidate_pairs(hashes, max_bits=CANDIDATE_BITS):
    """Index pairs (i, j), i < j, of hashes at most `max_bits` bits apart."""
    edges = [round(HASH_BITS * k / (max_bits + 1)) for k in range(max_bits + 2)]
    pairs = set()
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (1 << (hi - lo)) - 1
        buckets = collections.defaultdict(list)
        for i, h in enumerate(hashes):
            if h is not None:
                buckets[(h >> (HASH_BITS - hi)) & mask].append(i)
        for members in buckets.values():
            for a, i in enumerate(members):
                for j in members[a + 1 :]:
                    if bin(hashes[i] ^ hashes[j]).count("1") <= max_bits:
                        pairs.add((i, j))
    return sorted(pairs)


def group_near_duplicates(records, min_similarity=DEFAULT_MIN_SIMILARITY):
    """Records with the `ref_id`s of near-duplicate images merged.

    References joined by a chain of matching images become one group, which
    takes the `ref_id` of its first member in record order.

    Args:
        records: list of record dicts (`image_path`, `ref_id`).
        min_similarity: float. Thumbnail correlation from which two images
            are taken as the same photo.

    Returns:
        New record dicts (same order); the input is not modified.
    """
    signatures = [image_signature(r["image_path"]) for r in records]
    hashes = [s[0] if s else None for s in signatures]
    parent = {}

    def root(ref):
        while parent.get(ref, ref) != ref:
            ref = parent[ref]
        return ref

    order = {}
    for r in records:
        order.setdefault(r["ref_id"], len(order))
    for i, j in candidate_pairs(hashes):
        if float(signatures[i][1] @ signatures[j][1]) < float(min_similarity):
            continue
        a, b = root(records[i]["ref_id"]), root(records[j]["ref_id"])
        if a != b:
            first, second = sorted((a, b), key=order.get)
            parent[second] = first
    merged = sum(1 for ref in order if root(ref) != ref)
    if merged:
        logger.info("Grouped %d near-duplicate reference(s) by image hash.", merged)
    return [{**r, "ref_id": root(r["ref_id"])} for r in records]
