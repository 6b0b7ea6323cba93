"""In-graph decoding for the `serving_default` signature.

`decode_image_bytes` checks the size an encoded image declares in its header
against `MAX_PIXELS` and `MAX_ASPECT_RATIO` (those of `tfiqa predict`) before
decoding, so a small file claiming a huge image fails its request with
INVALID_ARGUMENT instead of growing the server by gigabytes. It decodes what
`tf.io.decode_image` does (JPEG, PNG, BMP, GIF first frame) plus 1-bit
(monochrome) BMP, which TensorFlow's BMP decoder rejects.

A JPEG is then checked and turned upright as `tfiqa predict` does: a JPEG
whose data ends before its image does (TensorFlow and Pillow fill the missing
blocks with flat grey 128) fails with INVALID_ARGUMENT, and the EXIF
Orientation tag is applied like Pillow's `ImageOps.exif_transpose`, so the
same bytes score the same on both paths. Malformed EXIF means orientation 1.
"""

import tensorflow as tf

from tfiqa.data.image_io import (
    JPEG_FILL_MESSAGE,
    JPEG_FILL_ROWS,
    MAX_ASPECT_RATIO,
    MAX_PIXELS,
)

_PAD = 64  # header fields are read from the padded bytes, never out of range

# Marker segments walked looking for EXIF; it comes first in practice.
_MAX_JPEG_SEGMENTS = 64
_EXIF_ID = int.from_bytes(b"Exif\0\0", "big")
_ORIENTATION_TAG = 0x0112
_TIFF_SHORT = 3
_TIFF_LONG = 4


def _uint(padded, offset, size, big_endian=False):
    raw = tf.cast(
        tf.io.decode_raw(tf.strings.substr(padded, offset, size), tf.uint8), tf.int64
    )
    order = tf.range(size, dtype=tf.int64) * 8
    if big_endian:
        order = tf.reverse(order, [0])
    return tf.reduce_sum(tf.bitwise.left_shift(raw, order))


def _int32(padded, offset):
    value = _uint(padded, offset, 4)
    return tf.where(value >= 2**31, value - 2**32, value)


def header_shape(image_bytes):
    """(height, width) int64 that the header declares; (0, 0) if unknown."""
    padded = tf.strings.join([image_bytes, tf.constant(b"\0" * _PAD)])
    magic = tf.strings.substr(padded, 0, 4)
    png = (_uint(padded, 20, 4, True), _uint(padded, 16, 4, True))
    gif = (_uint(padded, 8, 2), _uint(padded, 6, 2))
    bmp = (tf.abs(_int32(padded, 22)), tf.abs(_int32(padded, 18)))

    def jpeg():
        shape = tf.io.extract_jpeg_shape(image_bytes, output_type=tf.int64)
        return shape[0], shape[1]

    zero = tf.constant(0, tf.int64)
    return tf.case(
        [
            (tf.io.is_jpeg(image_bytes), jpeg),
            (tf.equal(magic, b"\x89PNG"), lambda: png),
            (tf.equal(tf.strings.substr(magic, 0, 3), b"GIF"), lambda: gif),
            (tf.equal(tf.strings.substr(magic, 0, 2), b"BM"), lambda: bmp),
        ],
        default=lambda: (zero, zero),
    )


def check_header(image_bytes):
    """Asserts (InvalidArgument) the declared size is within the caps."""
    height, width = header_shape(image_bytes)
    longer, shorter = tf.maximum(height, width), tf.minimum(height, width)
    return [
        tf.debugging.assert_less_equal(
            height * width,
            tf.constant(MAX_PIXELS, tf.int64),
            message=f"Image too large: at most {MAX_PIXELS} pixels",
        ),
        tf.debugging.assert_less_equal(
            longer,
            tf.constant(MAX_ASPECT_RATIO, tf.int64) * tf.maximum(shorter, 1),
            message=f"Image aspect ratio above {MAX_ASPECT_RATIO}:1",
        ),
    ]


def _decode_bmp_1bit(image_bytes):
    """Monochrome BMP: 1 bit per pixel indexing a 2-colour BGRA palette."""
    padded = tf.strings.join([image_bytes, tf.constant(b"\0" * _PAD)])
    offset = _uint(padded, 10, 4)
    width = _int32(padded, 18)
    height = _int32(padded, 22)
    rows = tf.abs(height)
    stride = (width + 31) // 32 * 4  # rows are padded to 4 bytes
    data = tf.io.decode_raw(
        tf.strings.substr(image_bytes, offset, rows * stride), tf.uint8
    )
    data = tf.reshape(data, tf.stack([rows, stride]))
    shifts = tf.constant([7, 6, 5, 4, 3, 2, 1, 0], tf.uint8)
    bits = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(data[..., tf.newaxis], shifts), 1
    )
    bits = tf.reshape(bits, tf.stack([rows, stride * 8]))[:, :width]
    palette_at = 14 + _uint(padded, 14, 4)
    palette = tf.io.decode_raw(tf.strings.substr(image_bytes, palette_at, 8), tf.uint8)
    palette = tf.reverse(tf.reshape(palette, [2, 4])[:, :3], [1])  # BGR -> RGB
    image = tf.gather(palette, tf.cast(bits, tf.int32))
    # A positive height means the rows are stored bottom-up.
    return tf.cond(height > 0, lambda: tf.reverse(image, [0]), lambda: image)


def _uint_at(data, offsets, size, big_endian):
    """Unsigned ints of `size` bytes at `offsets` (int64, any shape) in the
    uint8 vector `data`. Bytes outside `data` read as 0, so a malformed offset
    gives a wrong value, never an error or an out-of-range read."""
    length = tf.size(data, out_type=tf.int64)
    index = tf.expand_dims(offsets, -1) + tf.range(size, dtype=tf.int64)
    inside = tf.logical_and(index >= 0, index < length)
    padded = tf.concat([data, tf.zeros([1], tf.uint8)], 0)
    raw = tf.cast(tf.gather(padded, tf.where(inside, index, length)), tf.int64)
    shifts = tf.range(size, dtype=tf.int64) * 8
    shifts = tf.where(big_endian, tf.reverse(shifts, [0]), shifts)
    return tf.reduce_sum(tf.bitwise.left_shift(raw, shifts), -1)


def _exif_block(data):
    """(start, length) of the TIFF block in the first APP1 "Exif\0\0" segment
    before the scan (SOS); length 0 if there is none."""
    length = tf.size(data, out_type=tf.int64)
    zero = tf.constant(0, tf.int64)

    def more(i, pos, start, size, done):
        return tf.logical_and(i < _MAX_JPEG_SEGMENTS, tf.logical_not(done))

    def step(i, pos, start, size, done):
        lead = _uint_at(data, pos, 1, False)
        marker = _uint_at(data, pos + 1, 1, False)
        segment = _uint_at(data, pos + 2, 2, True)  # counts its own 2 bytes
        fill = tf.equal(marker, 0xFF)  # padding before a marker
        standalone = tf.logical_or(
            tf.logical_and(marker >= 0xD0, marker <= 0xD7), tf.equal(marker, 0x01)
        )
        exif = tf.logical_and(
            tf.equal(marker, 0xE1), tf.equal(_uint_at(data, pos + 4, 6, True), _EXIF_ID)
        )
        stop = tf.reduce_any(
            [
                pos + 4 > length,
                tf.not_equal(lead, 0xFF),
                tf.equal(marker, 0xDA),  # SOS: the metadata is over
                tf.equal(marker, 0xD9),
                tf.logical_and(
                    tf.logical_not(tf.logical_or(fill, standalone)), segment < 2
                ),
            ]
        )
        block_start = pos + 10
        block_size = tf.clip_by_value(segment - 8, 0, length - block_start)
        found = tf.logical_and(exif, tf.logical_not(stop))
        one, two = tf.constant(1, tf.int64), tf.constant(2, tf.int64)
        step_size = tf.where(fill, one, tf.where(standalone, two, 2 + segment))
        return (
            i + 1,
            pos + step_size,
            tf.where(found, block_start, start),
            tf.where(found, tf.maximum(block_size, 0), size),
            tf.reduce_any([stop, found]),
        )

    state = (zero, tf.constant(2, tf.int64), zero, zero, tf.constant(False))
    _, _, start, size, _ = tf.while_loop(more, step, state)
    return start, size


def exif_orientation(image_bytes):
    """The EXIF Orientation (1..8) of a JPEG (scalar tf.string), int64; 1 if
    it has none or the EXIF is malformed."""
    data = tf.io.decode_raw(image_bytes, tf.uint8)
    start, size = _exif_block(data)
    tiff = tf.slice(data, tf.reshape(start, [1]), tf.reshape(size, [1]))
    byte_order = _uint_at(tiff, tf.constant(0, tf.int64), 2, True)
    big = tf.equal(byte_order, 0x4D4D)  # "MM"; "II" is little-endian
    known_order = tf.logical_or(big, tf.equal(byte_order, 0x4949))
    ifd = _uint_at(tiff, tf.constant(4, tf.int64), 4, big)
    # Only the 12-byte entries wholly inside the block.
    fits = tf.maximum((size - ifd - 2) // 12, 0)
    count = tf.minimum(_uint_at(tiff, ifd, 2, big), fits)
    entries = ifd + 2 + 12 * tf.range(count)  # (count,)
    # Pillow reads the tag as a SHORT or a LONG, one value.
    field_type = _uint_at(tiff, entries + 2, 2, big)
    is_short = tf.equal(field_type, _TIFF_SHORT)
    is_long = tf.equal(field_type, _TIFF_LONG)
    match = tf.reduce_all(
        [
            tf.equal(_uint_at(tiff, entries, 2, big), _ORIENTATION_TAG),
            tf.logical_or(is_short, is_long),
            tf.equal(_uint_at(tiff, entries + 4, 4, big), 1),
        ],
        axis=0,
    )
    values = tf.where(
        is_short,
        _uint_at(tiff, entries + 8, 2, big),
        _uint_at(tiff, entries + 8, 4, big),
    )
    # Pillow keeps the last of repeated tags.
    last = tf.reduce_max(tf.where(match, tf.range(count), tf.constant(-1, tf.int64)))
    upright = tf.constant(1, tf.int64)
    values = tf.concat([values, tf.reshape(upright, [1])], 0)
    value = tf.gather(values, tf.where(last < 0, count, last))
    valid = tf.reduce_all([known_order, value >= 1, value <= 8])
    return tf.where(valid, value, upright)


def orient(image, orientation):
    """`image` (H, W, C) transposed as Pillow's `exif_transpose` does for an
    EXIF `orientation` (int64 scalar); values outside 1..8 leave it as is."""

    def transposed():
        return tf.transpose(image, [1, 0, 2])

    branches = [
        lambda: image,
        lambda: tf.reverse(image, [1]),  # 2: FLIP_LEFT_RIGHT
        lambda: tf.reverse(image, [0, 1]),  # 3: ROTATE_180
        lambda: tf.reverse(image, [0]),  # 4: FLIP_TOP_BOTTOM
        transposed,  # 5: TRANSPOSE
        lambda: tf.reverse(transposed(), [1]),  # 6: ROTATE_270 (clockwise)
        lambda: tf.reverse(transposed(), [0, 1]),  # 7: TRANSVERSE
        lambda: tf.reverse(transposed(), [0]),  # 8: ROTATE_90 (anticlockwise)
    ]
    known = tf.logical_and(orientation >= 1, orientation <= 8)
    # switch_case runs its last branch for an index out of range.
    index = tf.cast(tf.where(known, orientation - 1, 0), tf.int32)
    return tf.switch_case(index, branches)


def check_jpeg_fill(image):
    """Assert op: the last `JPEG_FILL_ROWS` rows of a decoded JPEG are not all
    exactly 128, the grey decoders put where the data ran out (the rule of
    `tfiqa.data.image_io` for the Python path)."""
    filled = tf.logical_and(
        tf.shape(image)[0] > JPEG_FILL_ROWS,
        tf.reduce_all(tf.equal(image[-JPEG_FILL_ROWS:], 128)),
    )
    return tf.debugging.Assert(tf.logical_not(filled), [JPEG_FILL_MESSAGE])


def _decode_jpeg(image_bytes):
    """A JPEG (or MPO: its first picture) -> upright uint8 (H, W, 3)."""
    # INTEGER_ACCURATE is Pillow's IDCT; TensorFlow's default differs by up
    # to 8 levels per pixel, which changes the score.
    image = tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE")
    # The fill is at the bottom of the image as stored, so check before turning.
    with tf.control_dependencies([check_jpeg_fill(image)]):
        image = tf.identity(image)
    return orient(image, exif_orientation(image_bytes))


def decode_image_bytes(image_bytes):
    """One encoded image (scalar tf.string) -> uint8 (H, W, 3), size-checked;
    a JPEG is turned upright by its EXIF orientation and refused if its data
    ends early."""
    with tf.control_dependencies(check_header(image_bytes)):
        padded = tf.strings.join([image_bytes, tf.constant(b"\0" * _PAD)])
        one_bit_bmp = tf.logical_and(
            tf.equal(tf.strings.substr(padded, 0, 2), b"BM"),
            tf.equal(_uint(padded, 28, 2), 1),
        )
        image = tf.case(
            [
                (one_bit_bmp, lambda: _decode_bmp_1bit(image_bytes)),
                (tf.io.is_jpeg(image_bytes), lambda: _decode_jpeg(image_bytes)),
            ],
            # channels=3: grayscale and RGBA become RGB; GIF: its first frame.
            default=lambda: tf.io.decode_image(
                image_bytes, channels=3, expand_animations=False
            ),
        )
    return tf.ensure_shape(image, [None, None, 3])
