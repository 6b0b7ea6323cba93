"""`decode_image_bytes`: EXIF orientation and JPEGs that end early, decoded
in the graph as `tfiqa predict` decodes them in Python."""

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image
from PIL import Image

import tfiqa
from tfiqa.data.image_io import decode_image
from tfiqa.export import export_model
from tfiqa.export.decode import decode_image_bytes
from tfiqa.inference.backends.saved_model import saved_model_bytes_fn
from tfiqa.inference.backends.trust import check_saved_model

from .helpers import SIZE, tiny_model

ORIENTATION = 0x0112
# Noise, not a smooth image: every orientation gives different pixels.
NOISE = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def decode_in_graph(image_bytes):
    """How `serving_default` calls it (per image, inside `tf.map_fn`)."""
    return decode_image_bytes(image_bytes)


def decoders():
    return [
        lambda data: decode_image_bytes(tf.constant(data)).numpy(),
        lambda data: decode_in_graph(tf.constant(data)).numpy(),
    ]


def jpeg(image, **options):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def with_app1(data, payload):
    """`data` (a JPEG) with an APP1 segment holding `payload` after SOI."""
    return (
        data[:2]
        + b"\xff\xe1"
        + struct.pack(">H", len(payload) + 2)
        + payload
        + data[2:]
    )


def exif_tiff(orientation, order="<", ifd=8, count=1, field_type=3):
    """A TIFF block holding IFD0 with one Orientation entry."""
    value = struct.pack(order + "H2x" if field_type == 3 else order + "I", orientation)
    return (
        (b"II" if order == "<" else b"MM")
        + struct.pack(order + "HI", 42, ifd)
        + struct.pack(order + "HHHI", count, ORIENTATION, field_type, 1)
        + value
        + struct.pack(order + "I", 0)
    )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_as_pillow(orientation):
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = jpeg(NOISE, exif=exif.tobytes())
    expected = decode_image(data)
    if orientation >= 5:
        assert expected.shape == (40, 24, 3)
    big_endian = with_app1(jpeg(NOISE), b"Exif\0\0" + exif_tiff(orientation, ">"))
    np.testing.assert_array_equal(decode_image(big_endian), expected)
    for decode in decoders():
        np.testing.assert_array_equal(decode(data), expected)
        np.testing.assert_array_equal(decode(big_endian), expected)


@pytest.mark.parametrize(
    "payload",
    [
        b"Exif\0\0",
        b"Exif\0\0" + exif_tiff(6)[:12],  # cut inside IFD0
        b"Exif\0\0" + exif_tiff(6)[:18],  # cut inside the entry
        b"Exif\0\0" + exif_tiff(6, ifd=0xFFFFFFF0),
        b"Exif\0\0" + exif_tiff(6, ifd=0x7FFFFFFF, count=0xFFFF),
        b"Exif\0\0XX" + exif_tiff(6)[2:],  # no byte order
        b"Exif\0\0" + exif_tiff(9),
        b"Exif\0\0" + exif_tiff(0),
        b"Exif\0\0" + exif_tiff(6, field_type=7),
        b"Exi",
    ],
)
def test_malformed_exif_is_upright(payload):
    data = with_app1(jpeg(NOISE), payload)
    expected = decode_image(data)
    np.testing.assert_array_equal(expected, decode_image(jpeg(NOISE)))
    for decode in decoders():
        np.testing.assert_array_equal(decode(data), expected)


@pytest.mark.parametrize(
    "tiff",
    [
        exif_tiff(6, count=0xFFFF),  # the entries that fit are read
        exif_tiff(6, field_type=4),  # a LONG, which Pillow reads too
    ],
)
def test_odd_exif_as_pillow(tiff):
    data = with_app1(jpeg(NOISE), b"Exif\0\0" + tiff)
    expected = decode_image(data)
    assert expected.shape == (40, 24, 3)
    for decode in decoders():
        np.testing.assert_array_equal(decode(data), expected)


def test_jpeg_header_overstating_size_fails():
    noise = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    data = bytearray(jpeg(noise))
    at = data.index(b"\xff\xc0") + 5
    data[at : at + 4] = struct.pack(">HH", 8944, 8944)
    for decode in decoders():
        with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG data ends"):
            decode(bytes(data))


def test_grey_band_above_the_bottom_decodes():
    photo = make_image((64, 48), seed=2)
    photo[16:48] = 128  # whole 8x8 blocks, so exactly 128 once decoded
    normal = jpeg(make_image((64, 48), seed=3))
    banded = jpeg(photo, subsampling=0)
    for decode in decoders():
        np.testing.assert_array_equal(decode(normal), decode_image(normal))
        got = decode(banded)
        np.testing.assert_array_equal(got, decode_image(banded))
        assert np.all(got[16:48] == 128)


def test_serving_default_scores_exif_jpeg_as_predict(tmp_path):
    export_model(tiny_model(), str(tmp_path), formats=["saved_model"], input_size=SIZE)
    check_saved_model(str(tmp_path / "tfiqa" / "1"))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg(make_image((40, 72), seed=4), exif=exif.tobytes()))
    served = saved_model_bytes_fn(str(tmp_path))([path.read_bytes()])
    expected = tfiqa.load(str(tmp_path)).score([str(path)])
    np.testing.assert_allclose(served, expected, atol=1e-5)
    stored = decode_image(jpeg(make_image((40, 72), seed=4)))
    unturned = tfiqa.load(str(tmp_path)).score([stored])
    assert abs(served[0] - unturned[0]) > 1e-3  # the orientation matters here
