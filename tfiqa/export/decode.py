"""In-graph decoding for the `serving_default` signature.

`decode_image_bytes` checks the size an encoded image declares in its header
against `MAX_PIXELS` and `MAX_ASPECT_RATIO` (those of `tfiqa predict`) before
decoding, so a small file claiming a huge image fails its request with
INVALID_ARGUMENT instead of growing the server by gigabytes. It decodes what
`tf.io.decode_image` does (JPEG, PNG, BMP, GIF first frame) plus 1-bit
(monochrome) BMP, which TensorFlow's BMP decoder rejects.
"""

import tensorflow as tf

from tfiqa.data.image_io import MAX_ASPECT_RATIO, MAX_PIXELS

_PAD = 64  # header fields are read from the padded bytes, never out of range


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


def decode_image_bytes(image_bytes):
    """One encoded image (scalar tf.string) -> uint8 (H, W, 3), size-checked."""
    with tf.control_dependencies(check_header(image_bytes)):
        padded = tf.strings.join([image_bytes, tf.constant(b"\0" * _PAD)])
        one_bit_bmp = tf.logical_and(
            tf.equal(tf.strings.substr(padded, 0, 2), b"BM"),
            tf.equal(_uint(padded, 28, 2), 1),
        )
        image = tf.cond(
            one_bit_bmp,
            lambda: _decode_bmp_1bit(image_bytes),
            # channels=3: grayscale and RGBA become RGB; GIF: its first frame.
            lambda: tf.io.decode_image(
                image_bytes, channels=3, expand_animations=False
            ),
        )
    return tf.ensure_shape(image, [None, None, 3])
