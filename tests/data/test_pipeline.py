import io
import logging

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image
from PIL import Image

from tfiqa.data.crops import eval_crops
from tfiqa.data.image_io import load_image
from tfiqa.data.pipeline import (
    SkipLog,
    eval_crops_dataset,
    eval_image_dataset,
    mos_dataset,
)
from tfiqa.errors import ImageError


def _records(folder, n=6, size=(40, 48)):
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        path = folder / f"im {i} ({i}).{'png' if i % 2 else 'jpg'}"
        Image.fromarray(make_image(size, seed=i)).save(path)
        records.append(
            {
                "image_path": str(path),
                "mos": i / 10,
                "mos_raw": i / 10,
                "ref_id": str(i),
                "distortion": "",
                "level": 0,
            }
        )
    return records


def _collect(ds):
    images, scores = [], []
    for x, y in ds:
        images.append(x.numpy())
        scores.append(y.numpy())
    return np.concatenate(images), np.concatenate(scores)


def test_eval_batches_are_center_crops_in_order(tmp_path):
    records = _records(tmp_path / "a")
    ds = mos_dataset(records, crop_size=32, batch_size=4, training=False)
    spec_images, spec_mos = ds.element_spec
    assert spec_images.dtype == tf.uint8 and spec_mos.dtype == tf.float32
    assert spec_images.shape.as_list() == [None, 32, 32, 3]
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [4, 2]
    images, scores = _collect(ds)
    np.testing.assert_allclose(scores, [r["mos"] for r in records], rtol=1e-6)
    expected = eval_crops(load_image(records[3]["image_path"]), 32, 1)[0]
    np.testing.assert_array_equal(images[3], expected)


def test_training_is_seeded_and_changes_each_epoch(tmp_path):
    records = _records(tmp_path / "a")
    ds = mos_dataset(records, 24, 3, training=True, seed=7)
    first, second = _collect(ds), _collect(ds)
    again = _collect(mos_dataset(records, 24, 3, training=True, seed=7))
    np.testing.assert_array_equal(first[0], again[0])  # reproducible
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], second[0])  # new crops/order per epoch
    assert sorted(first[1]) == pytest.approx(sorted(r["mos"] for r in records))
    assert first[0].shape == (6, 24, 24, 3) and first[0].dtype == np.uint8
    # Each training crop is a (possibly flipped) window of its image: no resize.
    full = {round(r["mos"], 3): load_image(r["image_path"]) for r in records}
    crop, score = first[0][0], first[1][0]
    image = full[round(float(score), 3)]
    windows = [
        image[y : y + 24, x : x + 24]
        for y in range(image.shape[0] - 23)
        for x in range(image.shape[1] - 23)
    ]
    assert any(
        np.array_equal(crop, w) or np.array_equal(crop, w[:, ::-1]) for w in windows
    )


def test_small_and_missing_images_error_or_skip(tmp_path, caplog):
    records = _records(tmp_path / "a", n=3)
    Image.fromarray(make_image((20, 30))).save(tmp_path / "small.png")
    small = dict(records[0], image_path=str(tmp_path / "small.png"))
    with pytest.raises(ImageError, match="Received: 20x30") as info:
        mos_dataset([*records, small], 32, 2, training=True)
    assert "small.png" in str(info.value)
    gone = dict(records[0], image_path=str(tmp_path / "gone.jpg"))
    with pytest.raises(ImageError, match="gone.jpg"):
        mos_dataset([*records, gone], 32, 2, training=False)

    log = SkipLog()
    with caplog.at_level(logging.WARNING, logger="tfiqa.data"):
        ds = mos_dataset(
            [*records, small, gone], 32, 2, training=False, skip_bad=True, skip_log=log
        )
    assert log.count == 2 and "small.png" in caplog.text
    assert _collect(ds)[0].shape[0] == 3


def test_truncated_file_fails_at_decode_or_is_skipped(tmp_path):
    records = _records(tmp_path / "a", n=3)
    buf = io.BytesIO()
    Image.fromarray(make_image((96, 96))).save(buf, format="JPEG")
    data = buf.getvalue()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    with Image.open(tmp_path / "cut.jpg") as img:
        assert img.size == (96, 96)  # the header survives: only decoding fails
    cut = dict(records[0], image_path=str(tmp_path / "cut.jpg"))
    ds = mos_dataset([*records, cut], 32, 4, training=False)
    with pytest.raises(tf.errors.OpError, match="cut.jpg"):
        _collect(ds)
    log = SkipLog()
    ds = mos_dataset(
        [*records, cut], 32, 4, training=False, skip_bad=True, skip_log=log
    )
    assert _collect(ds)[0].shape[0] == 3
    assert [p for p, _ in log.items] == [str(tmp_path / "cut.jpg")]


def test_exif_rotated_image_is_cropped_upright(tmp_path):
    array = np.zeros((40, 80, 3), np.uint8)
    array[:, :40] = 250  # left half white -> top half after rotation 6
    # Upright the image is 80 high x 40 wide; two crops go top and bottom.
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    record = {"image_path": str(path), "mos": 0.5}
    crops, _ = next(iter(eval_crops_dataset([record], 40, num_crops=2)))
    assert crops.shape == (2, 40, 40, 3)
    assert crops[0].numpy().mean() > 200 and crops[1].numpy().mean() < 50


def test_eval_image_dataset_yields_full_images(tmp_path):
    records = _records(tmp_path / "a", n=2, size=(30, 50))
    items = list(eval_image_dataset([r["image_path"] for r in records]))
    assert [tuple(im.shape) for im, _ in items] == [(30, 50, 3), (30, 50, 3)]
    assert items[1][1].numpy().decode() == records[1]["image_path"]
