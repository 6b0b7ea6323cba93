import io

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from tfiqa.data.image_io import check_min_size, decode_image, load_image
from tfiqa.errors import DataError, ImageError


def _save(path, image, **kwargs):
    image.save(path, **kwargs)
    return str(path)


def test_rgb_png_round_trip(tmp_path):
    array = make_image((24, 32), seed=1)
    path = _save(tmp_path / "a.png", Image.fromarray(array))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("ext", ["bmp", "tiff", "jpg"])
def test_other_formats(tmp_path, ext):
    array = make_image((20, 30), seed=2)
    path = _save(tmp_path / f"a.{ext}", Image.fromarray(array))
    out = load_image(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    tol = 20 if ext == "jpg" else 0
    assert np.abs(out.astype(int) - array.astype(int)).mean() <= tol


def test_grayscale_becomes_rgb(tmp_path):
    gray = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    out = load_image(_save(tmp_path / "g.png", Image.fromarray(gray, "L")))
    assert out.shape == (12, 16, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_and_palette(tmp_path):
    array = make_image((16, 16), seed=3)
    rgba = np.concatenate([array, np.full((16, 16, 1), 7, np.uint8)], axis=-1)
    out = load_image(_save(tmp_path / "a.png", Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(out, array)
    pal = Image.fromarray(array).convert("P", palette=Image.Palette.ADAPTIVE)
    out = load_image(_save(tmp_path / "p.png", pal))
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 257 * 200]], dtype=np.uint16)
    img = Image.fromarray(values.repeat(4, axis=0))
    assert img.mode.startswith("I;16")
    out = load_image(_save(tmp_path / "d.png", img))
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255, 200])
    assert out.shape == (4, 4, 3)


def test_cmyk_jpeg(tmp_path):
    img = Image.fromarray(make_image((16, 16), seed=4)).convert("CMYK")
    out = load_image(_save(tmp_path / "c.jpg", img, quality=95))
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path):
    # Stored 20 wide x 10 high with a red left half; orientation 6 means
    # "rotate 90 degrees clockwise to display", so the upright image is 10x20
    # (H=20, W=10) with red on top.
    array = np.zeros((10, 20, 3), np.uint8)
    array[:, :10] = (255, 0, 0)
    array[:, 10:] = (0, 0, 255)
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = 6
    path = _save(tmp_path / "rot.jpg", img, exif=exif.tobytes(), quality=95)
    out = load_image(path)
    assert out.shape == (20, 10, 3)
    assert out[2, 5, 0] > 200 and out[2, 5, 2] < 60  # top is red
    assert out[17, 5, 2] > 200 and out[17, 5, 0] < 60  # bottom is blue


def test_mpo_with_jpg_name_uses_first_frame(tmp_path):
    first = np.zeros((16, 24, 3), np.uint8)
    first[...] = (250, 10, 10)
    second = np.zeros((16, 24, 3), np.uint8)
    second[...] = (10, 10, 250)
    path = tmp_path / "stereo.jpg"
    Image.fromarray(first).save(
        path, format="MPO", save_all=True, append_images=[Image.fromarray(second)]
    )
    with Image.open(path) as check:
        assert check.format == "MPO" and check.n_frames == 2
    out = load_image(str(path))
    assert out.shape == (16, 24, 3)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50


def test_missing_empty_garbage_files(tmp_path):
    with pytest.raises(ImageError, match="not found") as info:
        load_image(tmp_path / "nope.jpg")
    assert "nope.jpg" in str(info.value)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image" * 20)
    with pytest.raises(ImageError, match="junk.jpg"):
        load_image(tmp_path / "junk.jpg")
    assert issubclass(ImageError, DataError)


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png")])
def test_truncated_file_raises(tmp_path, fmt, ext):
    buf = io.BytesIO()
    Image.fromarray(make_image((64, 64), seed=5)).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=f"cut.{ext}"):
        load_image(path)


def test_decode_image_decodes_bytes_as_load_image_decodes_files(tmp_path):
    # EXIF-rotated JPEG, 16-bit PNG, palette: the same pixels from bytes.
    rotated = Image.fromarray(make_image((10, 20), seed=6))
    exif = rotated.getexif()
    exif[0x0112] = 6
    sixteen = Image.fromarray(make_image((8, 8))[..., 0].astype(np.uint16) * 257)
    files = {
        "rot.jpg": (rotated, {"exif": exif.tobytes()}),
        "deep.png": (sixteen, {}),
        "pal.png": (Image.fromarray(make_image((9, 7), seed=7)).convert("P"), {}),
    }
    for name, (image, kwargs) in files.items():
        path = _save(tmp_path / name, image, **kwargs)
        with open(path, "rb") as f:
            np.testing.assert_array_equal(
                decode_image(f.read(), path), load_image(path)
            )
    # Bad bytes get the message a bad file gets, naming the same source.
    buf = io.BytesIO()
    Image.fromarray(make_image((64, 64), seed=5)).save(buf, format="PNG")
    bad = {
        "empty.png": b"",
        "junk.jpg": b"not an image",
        "cut.png": buf.getvalue()[:300],
    }
    for name, data in bad.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ImageError) as from_file:
            load_image(str(path))
        with pytest.raises(ImageError) as from_bytes:
            decode_image(data, str(path))
        assert str(from_bytes.value) == str(from_file.value)


def test_check_min_size():
    image = np.zeros((20, 30, 3), np.uint8)
    check_min_size(image, 20, "ok.png")
    with pytest.raises(ImageError, match="Received: 20x30") as info:
        check_min_size(image, 24, "small.png")
    assert "small.png" in str(info.value) and "smaller than the crop" in str(info.value)


def jpeg_claiming(height, width, data_shape=(512, 512)):
    """A JPEG whose header claims height x width but whose data holds
    `data_shape` of noise: libjpeg fills the rest with flat grey."""
    import struct

    pixels = np.random.default_rng(0).integers(0, 256, (*data_shape, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0") + 5
    data[sof : sof + 4] = struct.pack(">HH", height, width)
    return bytes(data)


def test_a_jpeg_whose_data_ends_early_is_refused(tmp_path):
    data = jpeg_claiming(2048, 2048)
    path = tmp_path / "liar.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageError, match="JPEG data ends before the image does"):
        load_image(path)
    with pytest.raises(ImageError, match="liar.jpg"):
        decode_image(data, name="liar.jpg")


def test_flat_grey_elsewhere_is_an_image_not_fill(tmp_path):
    pixels = make_image((100, 120), seed=3)
    pixels[:60] = 128  # a grey sky, not at the bottom
    pixels[:, :30] = 128
    path = tmp_path / "grey.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    assert load_image(path).shape == (100, 120, 3)
    grey = tmp_path / "flat.png"  # PNG data never ends in decoder fill
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(grey)
    assert load_image(grey).shape == (64, 64, 3)
