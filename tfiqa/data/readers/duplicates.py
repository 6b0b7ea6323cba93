"""Near-duplicate photos share one `ref_id`, so no split can separate them.

Authentic MOS sets give every file its own reference, yet some hold the same
photo twice (re-encoded, resized or renamed). Splitting such a set by file
would put a photo in training and its twin in test. `group_near_duplicates`
computes a difference hash of every image (`image_hash`: 64 bits comparing
neighbouring pixels of an 8 x 9 grayscale thumbnail, which re-encoding and
mild resizing barely change) and merges the references of images whose
hashes differ in at most `max_distance` bits.

Candidate pairs are found by multi-index hashing: the 64 bits are cut into
`max_distance + 1` bands, and two hashes within the distance agree exactly
on at least one band, so only images sharing a band value are compared.

Reference: N. Krawetz, "Kind of like that" (dHash), 2013; Norouzi et al.,
"Fast search in Hamming space with multi-index hashing", CVPR 2012.
"""

import collections
import logging

import numpy as np

logger = logging.getLogger("tfiqa.data")

HASH_BITS = 64
DEFAULT_MAX_DISTANCE = 4


def image_hash(path):
    """The 64-bit difference hash of an image file (int), or None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("L", (64, 64))  # JPEG: decode at a fraction of the size
            thumb = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
            pixels = np.asarray(thumb, np.int16)
    except (OSError, ValueError) as e:
        logger.warning("Cannot hash %s (%s); it keeps its own ref_id.", path, e)
        return None
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()  # (64,)
    return int(np.packbits(bits).view(">u8")[0])


def _bands(max_distance):
    edges = [round(HASH_BITS * k / (max_distance + 1)) for k in range(max_distance + 2)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def near_duplicate_pairs(hashes, max_distance=DEFAULT_MAX_DISTANCE):
    """Index pairs (i, j), i < j, of hashes at most `max_distance` bits apart."""
    pairs = set()
    for lo, hi in _bands(max_distance):
        mask = (1 << (hi - lo)) - 1
        buckets = collections.defaultdict(list)
        for i, h in enumerate(hashes):
            if h is not None:
                buckets[(h >> (HASH_BITS - hi)) & mask].append(i)
        for members in buckets.values():
            for a, i in enumerate(members):
                for j in members[a + 1 :]:
                    if bin(hashes[i] ^ hashes[j]).count("1") <= max_distance:
                        pairs.add((i, j))
    return sorted(pairs)


def group_near_duplicates(records, max_distance=DEFAULT_MAX_DISTANCE):
    """Records with the `ref_id`s of near-duplicate images merged.

    Every reference group that holds a near-duplicate of another group's
    image takes the `ref_id` of the first such group (in record order).

    Args:
        records: list of record dicts (`image_path`, `ref_id`).
        max_distance: int. Largest Hamming distance between the 64-bit
            hashes of two images taken as the same photo.

    Returns:
        New record dicts (same order); the input is not modified.
    """
    hashes = [image_hash(r["image_path"]) for r in records]
    parent = {}

    def root(ref):
        while parent.get(ref, ref) != ref:
            ref = parent[ref]
        return ref

    order = {}
    for r in records:
        order.setdefault(r["ref_id"], len(order))
    for i, j in near_duplicate_pairs(hashes, int(max_distance)):
        a, b = root(records[i]["ref_id"]), root(records[j]["ref_id"])
        if a != b:
            first, second = sorted((a, b), key=order.get)
            parent[second] = first
    merged = sum(1 for ref in order if root(ref) != ref)
    if merged:
        logger.info("Grouped %d near-duplicate reference(s) by image hash.", merged)
    return [{**r, "ref_id": root(r["ref_id"])} for r in records]
