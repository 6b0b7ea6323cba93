"""`Scorer` on hostile input: any bytes as a file, any array, NUL, no pixels.

Every input gives a score or a `TfiqaError` (an error row for files), never
another exception.
"""

import io
import math
import os
import tempfile

import numpy as np
import pytest
from conftest import make_image
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from tfiqa.errors import ImageError, TfiqaError
from tfiqa.inference import load

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def scorer(model_path):
    return load(model_path)


def encoded(fmt, size=(20, 24), **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(make_image(size, seed=4)).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


GOOD_FILES = [encoded(f) for f in ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")]


@st.composite
def file_bytes(draw):
    """Random bytes, a real image's header then noise, or a real image with
    a few bytes changed or its end cut off."""
    good = draw(st.sampled_from(GOOD_FILES))
    kind = draw(st.sampled_from(["random", "header", "mutated", "truncated"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "header":
        return good[: draw(st.integers(1, 40))] + draw(st.binary(max_size=600))
    if kind == "truncated":
        return good[: draw(st.integers(0, len(good)))]
    data = bytearray(good)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@PROPERTY
@given(data=file_bytes())
@example(data=GOOD_FILES[-1][:-1] + b",")  # a GIF cut after an image separator
def test_any_bytes_as_an_image_file_give_a_score_or_an_error_row(scorer, data):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "image.png")
        with open(path, "wb") as f:
            f.write(data)
        (row,) = scorer.score_files([path])
    if row["error"]:
        assert row["score"] is None and isinstance(row["exception"], TfiqaError)
        assert "\n" not in row["error"]
    else:
        assert 0.0 <= row["score"] <= 1.0


DTYPES = st.sampled_from(
    ["uint8", "int8", "uint16", "int32", "int64", "uint64", "float16", "float32"]
    + ["float64", "bool", "complex64"]
)
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
    st.tuples(st.integers(0, 70), st.integers(0, 70), st.sampled_from([1, 3, 4])),
    st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 40), st.just(3)),
)


@PROPERTY
@given(array=hnp.arrays(DTYPES, SHAPES), as_list=st.booleans())
@example(array=np.zeros((0, 5, 3), np.uint8), as_list=False)  # no pixels
def test_any_array_gives_scores_or_a_tfiqa_error(scorer, array, as_list):
    inputs = [array] if as_list else array
    try:
        scores = scorer.score(inputs)
    except TfiqaError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert scores.dtype == np.float32
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores)
    count = 1 if as_list or array.ndim == 3 else array.shape[0]
    assert scores.shape == (count,)


def test_a_gif_cut_after_an_image_separator_is_an_error_row(scorer, tmp_path):
    path = tmp_path / "cut.gif"
    path.write_bytes(encoded("GIF")[:-1] + b",")  # trailer replaced by a new frame
    (row,) = scorer.score_files([str(path)])
    assert row["score"] is None and "Cannot decode image" in row["error"]


@pytest.mark.parametrize(
    "shape", [(0, 0, 3), (0, 40, 3), (40, 0, 3), (2, 0, 40, 3), (1, 40, 0, 3)]
)
def test_images_without_pixels_are_refused(scorer, shape):
    with pytest.raises(TfiqaError, match=r"at least one pixel. Received: shape"):
        scorer.score(np.zeros(shape, np.uint8))
    with pytest.raises(TfiqaError, match="at least one pixel"):
        scorer.score([np.zeros(shape[-3:], np.uint8)])


def test_an_empty_batch_scores_to_nothing(scorer):
    assert scorer.score(np.zeros((0, 40, 40, 3), np.uint8)).shape == (0,)
    assert scorer.score([]).shape == (0,)


def test_encoded_image_bytes_are_refused_with_what_to_do(scorer):
    jpeg = encoded("JPEG")
    for inputs in ([jpeg], jpeg):
        with pytest.raises(TfiqaError, match="encoded image data, not a file name"):
            scorer.score(inputs)
    from tfiqa.data.image_io import decode_image

    assert scorer.score(decode_image(jpeg)).shape == (1,)


def test_a_nul_byte_in_a_path_is_an_image_error(scorer, tmp_path):
    path = str(tmp_path / "a\0b.png")
    with pytest.raises(ImageError, match=r"File name holds a NUL byte: .*a\\0b.png"):
        scorer.score(path)
    (row,) = scorer.score_files([path])
    assert "NUL byte" in row["error"] and row["score"] is None


def test_a_bytes_path_is_a_file_name(scorer, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(make_image((40, 40))).save(path)
    expected = scorer.score(str(path))
    np.testing.assert_allclose(scorer.score(os.fsencode(path)), expected, atol=1e-6)
    np.testing.assert_allclose(scorer.score([os.fsencode(path)]), expected, atol=1e-6)


def test_score_files_refuses_encoded_bytes_before_scoring(scorer):
    with pytest.raises(TfiqaError, match="Item 1 is bytes holding a NUL byte"):
        list(scorer.score_files([b"a.png", encoded("PNG")]))
