"""A small corpus of hostile inputs for `tfiqa predict`, generated on the fly."""

import io
import os
import struct
import zlib

import numpy as np
from conftest import make_image
from PIL import Image


def png_header(width, height):
    """A tiny valid-looking PNG (correct CRCs) that claims width x height."""

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(pixels, quality=90):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _save(path, image, fmt=None, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt or "PNG", **kwargs)
    with open(path, "wb") as f:  # path may be bytes (an undecodable name)
        f.write(buffer.getvalue())


def write_corpus(folder):
    """Writes hostile and good files under `folder`.

    Returns:
        (inputs, expected): the paths to pass to `tfiqa predict` (the folder
        itself plus entries a folder walk does not list) and a dict path ->
        None (must score) or a substring its error must contain.
    """
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    expected = {}

    def good(name, image, fmt=None, **kwargs):
        path = os.path.join(folder, name)
        _save(os.fsencode(path), image, fmt, **kwargs)
        expected[path] = None

    def bad(name, data, error):
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        expected[path] = error

    rgb = Image.fromarray(make_image((48, 64), seed=1))
    good("photo.jpg", rgb, "JPEG", quality=80)
    good("photo.png", rgb)
    good("small.png", Image.fromarray(make_image((12, 30), seed=2)))
    good("tall.png", Image.fromarray(make_image((90, 40), seed=3)))
    good("gray.png", rgb.convert("L"))
    good("rgba.png", rgb.convert("RGBA"))
    good("palette.png", rgb.convert("P"))
    good("mono.bmp", rgb.convert("1"), "BMP")
    good(
        "sixteen.png",
        Image.fromarray(make_image((40, 40))[..., 0].astype(np.uint16) * 257),
    )
    good("photo.tif", rgb, "TIFF")
    good("photo.webp", rgb, "WEBP")
    good('comma, "quoted".png', rgb)
    good("carriage\rreturn.png", rgb)
    good("new\nline.png", rgb)
    good(os.fsdecode(b"latin1-\xe9\xff.png"), rgb)
    good("ünïcödé.png", rgb)
    with open(os.path.join(folder, "photo.png"), "rb") as f:
        photo = f.read()
    bad("empty.jpg", b"", "empty")
    bad("garbage.jpg", b"\xff\xd8 this is not a jpeg", "Cannot decode")
    bad("text.png", b"just some text", "Cannot decode")
    bad("truncated.png", photo[: len(photo) // 2], "Cannot decode")
    bad("bomb.png", png_header(20000, 20000), "too large")
    claims = bytearray(jpeg_bytes(make_image((64, 64), seed=4)))
    sof = claims.index(b"\xff\xc0") + 5
    claims[sof : sof + 4] = struct.pack(">HH", 1024, 1024)
    bad("overstated.jpg", bytes(claims), "JPEG data ends before the image does")
    bad("strip.png", png_header(1, 100_000_000), "too large")
    bad("line.png", png_header(5000, 1), "aspect ratio")
    thin = Image.fromarray(np.full((1, 4000, 3), 128, np.uint8))
    path = os.path.join(folder, "thin.png")
    _save(path, thin)
    expected[path] = "aspect ratio"
    os.symlink("loop_b.jpg", os.path.join(folder, "loop_a.jpg"))
    os.symlink("loop_a.jpg", os.path.join(folder, "loop_b.jpg"))
    expected[os.path.join(folder, "loop_a.jpg")] = "Symbolic link loop"
    expected[os.path.join(folder, "loop_b.jpg")] = "Symbolic link loop"
    os.symlink("nowhere.png", os.path.join(folder, "dangling.png"))
    expected[os.path.join(folder, "dangling.png")] = "Broken symbolic link"
    os.mkfifo(os.path.join(folder, "fifo.png"))
    expected[os.path.join(folder, "fifo.png")] = "FIFO"
    os.symlink("/dev/zero", os.path.join(folder, "zero.jpg"))
    expected[os.path.join(folder, "zero.jpg")] = "character device"
    # Entries a folder walk skips: an empty folder named like an image, a
    # missing file.
    outside = folder + "-extra"
    os.makedirs(os.path.join(outside, "x.jpg"))
    extra = {
        os.path.join(outside, "x.jpg"): "folder",
        os.path.join(outside, "missing.png"): "not found",
    }
    expected.update(extra)
    return [folder, *extra], expected
