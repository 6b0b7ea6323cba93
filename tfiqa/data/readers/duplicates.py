"""Near-duplicate photos share one `ref_id`, so no split can separate them.

Authentic MOS sets give every file its own reference, yet some hold the same
photo twice (re-encoded, resized or renamed) or a burst of nearly identical
shots, and two datasets sampled from one collection share scenes. Splitting
such a set by file would put a photo in training and its twin in test.
`group_near_duplicates` merges the references of images that match:

1. layout: every image becomes a 32 x 32 grayscale thumbnail, mean removed,
   unit norm; a pair is a candidate when the correlation (dot product) of
   their thumbnails is at least `min_similarity`. The pairs are found by
   comparing 8 x 8 block means (an orthogonal projection of the thumbnail)
   first: a projection never lengthens a difference, so no such pair is
   missed, which a hash threshold cannot promise (22 of BIQ2021's 181
   same-scene pairs have 64-bit difference hashes 9 to 23 bits apart);
2. detail: layout alone confuses different scenes of one kind (a horizon
   under a bright sky correlates above 0.95 with many others), so each
   candidate pair is confirmed by the correlation of the fine detail of
   their 64 x 64 colour thumbnails (the thumbnail minus its blur), at least
   `min_detail`; different scenes score about 0 there, copies and burst
   shots 0.3 to 1;
3. references are merged over confirmed pairs only (union-find), so no image
   joins a group without a confirmed match of its own and groups do not
   chain through pairs that merely share a layout. `group_datasets` groups
   across every dataset a run reads.

On biq2021-dev + biq2021-more (`benchmarks/results/near_duplicates.md`):
of 304 pairs with layout >= 0.95, 181 show one scene by detail; the former
rule (hashes <= 8 bits apart, then layout) left 19 of those 181 apart and
joined 7 pairs of different scenes; layout alone chained 41 photos of many
scenes into one group; layout then detail groups all 181, joins 1 other
pair, and its largest group holds 7 photos.

Reference: Agrawal et al., "Efficient similarity search in sequence
databases", FODO 1993 (the projection bound: filter, then verify).
"""

import logging

import numpy as np

logger = logging.getLogger("tfiqa.data")

THUMB_SIDE = 32
DETAIL_SIDE = 64
DETAIL_BLUR = 2.0  # pixels of the 64 x 64 thumbnail; finer is detail
BLOCK_SIDE = 4  # the candidate filter's 8 x 8 grid of 4 x 4 block means
ROWS_PER_PASS = 1024  # rows of the pair search per matrix product
# Re-encoded or resized copies score above 0.99, burst shots of one scene
# 0.95-0.99 (BIQ2021); so do some different photos of one layout, which the
# detail check tells apart.
DEFAULT_MIN_SIMILARITY = 0.95
# By eye on BIQ2021 pairs above 0.95: below 0.25 detail correlation 22 of 24
# pairs showed different scenes; from 0.25 up 16 of 19 the same scene (3
# too dark to tell).
DEFAULT_MIN_DETAIL = 0.25


def thumbnail(path):
    """The normalised 32 x 32 grayscale thumbnail (1024,) of an image file,
    or None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("L", (4 * THUMB_SIDE, 4 * THUMB_SIDE))  # fast JPEG decode
            gray = image.convert("L")
            thumb = gray.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    except (OSError, ValueError) as e:
        logger.warning("Cannot read %s (%s); it keeps its own ref_id.", path, e)
        return None
    vector = np.asarray(thumb, np.float32).ravel()
    vector -= vector.mean()
    return vector / (np.linalg.norm(vector) + 1e-6)


def detail(path):
    """The fine detail of an image file: its 64 x 64 RGB thumbnail minus a
    blurred copy, mean removed, unit norm (12288,); None if unreadable."""
    from PIL import Image, ImageFilter

    try:
        with Image.open(path) as image:
            image.draft("RGB", (4 * DETAIL_SIDE, 4 * DETAIL_SIDE))
            thumb = image.convert("RGB").resize(
                (DETAIL_SIDE, DETAIL_SIDE), Image.Resampling.BILINEAR
            )
    except (OSError, ValueError):
        return None  # `thumbnail` has warned about this file
    blurred = thumb.filter(ImageFilter.GaussianBlur(DETAIL_BLUR))
    vector = (np.asarray(thumb, np.float32) - np.asarray(blurred, np.float32)).ravel()
    vector -= vector.mean()
    return vector / (np.linalg.norm(vector) + 1e-6)


def _block_means(vectors):
    """(n, 1024) thumbnails -> (n, 64) coordinates in the orthonormal basis of
    4 x 4 block indicators (each scaled to unit norm)."""
    n = len(vectors)
    side = THUMB_SIDE // BLOCK_SIDE
    blocks = vectors.reshape(n, side, BLOCK_SIDE, side, BLOCK_SIDE)
    return blocks.sum(axis=(2, 4)).reshape(n, -1) / BLOCK_SIDE


def matching_pairs(vectors, min_similarity=DEFAULT_MIN_SIMILARITY):
    """Pairs of unit thumbnails whose correlation is >= `min_similarity`.

    Args:
        vectors: (n, 1024) float32, rows from `thumbnail` (zeros: no image).
        min_similarity: float in (0, 1].

    Returns:
        list of (similarity, i, j) with i < j, the most similar first.
    """
    vectors = np.asarray(vectors, np.float32)
    coarse = _block_means(vectors)
    norms = np.sum(coarse * coarse, axis=1)
    # |a - b|^2 = 2 - 2 a.b for unit a, b; the projection keeps it as a bound.
    radius = 2.0 - 2.0 * float(min_similarity) + 1e-4
    pairs = []
    for start in range(0, len(vectors), ROWS_PER_PASS):
        rows = slice(start, start + ROWS_PER_PASS)
        distance = norms[rows, None] + norms[None, :] - 2.0 * coarse[rows] @ coarse.T
        i, j = np.nonzero(distance <= radius)
        i = i + start
        keep = j > i
        i, j = i[keep], j[keep]
        similarity = np.einsum("kd,kd->k", vectors[i], vectors[j])
        confirmed = similarity >= float(min_similarity)
        pairs += zip(
            similarity[confirmed].tolist(),
            i[confirmed].tolist(),
            j[confirmed].tolist(),
            strict=True,
        )
    return sorted(pairs, key=lambda p: (-p[0], p[1], p[2]))


def group_near_duplicates(
    records,
    min_similarity=DEFAULT_MIN_SIMILARITY,
    min_detail=DEFAULT_MIN_DETAIL,
):
    """Records with the `ref_id`s of near-duplicate images merged.

    References joined through confirmed pairs become one group, which takes
    the `ref_id` of its first member in record order.

    Args:
        records: list of record dicts (`image_path`, `ref_id`).
        min_similarity: float. Thumbnail (layout) correlation from which two
            images are candidates.
        min_detail: float. Correlation of fine detail from which a
            candidate pair is taken as the same photo.

    Returns:
        New record dicts (same order); the input is not modified.
    """
    vectors = np.zeros((len(records), THUMB_SIDE * THUMB_SIDE), np.float32)
    for k, r in enumerate(records):
        thumb = thumbnail(r["image_path"])
        if thumb is not None:
            vectors[k] = thumb
    details = {}

    def detail_of(k):
        if k not in details:
            details[k] = detail(records[k]["image_path"])
        return details[k]

    parent = {}

    def root(ref):
        while parent.get(ref, ref) != ref:
            ref = parent[ref]
        return ref

    order = {}
    for r in records:
        order.setdefault(r["ref_id"], len(order))
    for _, i, j in matching_pairs(vectors, min_similarity):
        a, b = root(records[i]["ref_id"]), root(records[j]["ref_id"])
        if a == b:
            continue
        first, second = detail_of(i), detail_of(j)
        if first is None or second is None or float(first @ second) < min_detail:
            continue
        a, b = sorted((a, b), key=order.get)
        parent[b] = a
    merged = sum(1 for ref in order if root(ref) != ref)
    if merged:
        logger.info("Grouped %d near-duplicate reference(s) by thumbnail.", merged)
    return [{**r, "ref_id": root(r["ref_id"])} for r in records]


def group_datasets(
    datasets, min_similarity=DEFAULT_MIN_SIMILARITY, min_detail=DEFAULT_MIN_DETAIL
):
    """Groups near-duplicates across several datasets read for one run.

    Each dataset's `ref_id`s are first prefixed with its position (`0:`,
    `1:`, ...) so that equal names in two datasets stay apart unless their
    images match; then every image is compared with every other.

    Args:
        datasets: list of record lists.

    Returns:
        list of record lists, the same shapes, with shared `ref_id`s where
        images of any two datasets (or one) match.
    """
    tagged = [
        {**r, "ref_id": f"{k}:{r['ref_id']}"}
        for k, records in enumerate(datasets)
        for r in records
    ]
    grouped = group_near_duplicates(tagged, min_similarity, min_detail)
    out, start = [], 0
    for records in datasets:
        out.append(grouped[start : start + len(records)])
        start += len(records)
    return out
