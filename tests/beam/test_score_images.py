"""`ScoreImages` on the DirectRunner gives `tfiqa predict`'s rows.

Every pipeline here runs in this process on Beam's DirectRunner, without
network: local files, and a "memtest://" filesystem standing in for GCS.
"""

import io
from pathlib import Path

import pytest

beam = pytest.importorskip(
    "apache_beam", reason="apache-beam is not installed: pip install '.[beam]'"
)

from apache_beam.io import fileio  # noqa: E402
from apache_beam.testing.util import assert_that  # noqa: E402
from conftest import make_image  # noqa: E402
from PIL import Image  # noqa: E402

import tfiqa.inference  # noqa: E402
from tfiqa.beam import ImagePaths, ScoreImages, WriteScoresCSV  # noqa: E402
from tfiqa.inference import load  # noqa: E402
from tfiqa.inference.predict import predict_files  # noqa: E402
from tfiqa.scoring_policy import ScoringPolicy  # noqa: E402

from . import memfs  # noqa: E402
from .helpers import assert_same_rows, read_shards  # noqa: E402

pytestmark = pytest.mark.slow


def png(seed, size=(40, 36)):
    buffer = io.BytesIO()
    Image.fromarray(make_image(size, seed=seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def predict_rows(model, paths, **kwargs):
    """What `tfiqa predict` computes for `paths` (unrounded scores)."""
    return predict_files(load(model), list(paths), **kwargs)


def renamed(rows, names):
    """Rows with `image` (and its mention in the error) renamed by `names`."""
    out = []
    for row in rows:
        name = names[row["image"]]
        error = row["error"].replace(row["image"], name)
        out.append({"image": name, "score": row["score"], "error": error})
    return out


@pytest.fixture
def bucket(tmp_path):
    """Photos in "memtest://bucket" and byte-identical local copies.

    Returns (local path -> URL of the same bytes, the URLs a folder or list
    input must not reach).
    """
    memfs.MemoryFileSystem.FILES.clear()
    files = {
        "photos/a.png": png(1),
        "photos/b.png": png(2, (70, 30)),
        "photos/sub/c.png": png(3, (20, 24)),  # smaller than the crop
        "photos/bad.jpg": b"\xff\xd8 not a jpeg",
        "photos/empty.png": b"",
        "lists/d.png": png(4),
    }
    local = {}
    for name, data in files.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        local[str(path)] = memfs.put(f"bucket/{name}", data)
    unreachable = [
        memfs.put("bucket/photos/.hidden.png", png(5)),
        memfs.put("bucket/photos/.thumbs/e.png", png(6)),
        memfs.put("bucket/photos/notes.txt", b"not an image"),
    ]
    yield local, unreachable
    memfs.MemoryFileSystem.FILES.clear()


def test_remote_folders_lists_bytes_and_files_score_as_predict_does(
    tmp_path, beam_model, direct_runner, bucket, monkeypatch
):
    local, unreachable = bucket
    model_url = memfs.put("models/model.keras", Path(beam_model).read_bytes())
    list_url = memfs.put(
        "bucket/lists/part-0.txt",
        b"memtest://bucket/lists/d.png\n\nmemtest://bucket/lists/missing.png\n",
    )
    loads = []
    real_load = tfiqa.inference.load
    monkeypatch.setattr(
        tfiqa.inference, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k)
    )

    # The reference: `tfiqa predict` on local copies of the same bytes.
    expected = renamed(predict_rows(beam_model, local), local)
    expected.append(
        {
            "image": "memtest://bucket/lists/missing.png",
            "score": None,
            "error": "Image file not found: memtest://bucket/lists/missing.png",
        }
    )
    a_local = next(p for p, url in local.items() if url.endswith("photos/a.png"))
    pairs = [("pair:a.png", Path(a_local).read_bytes()), ("pair:bad", b"GIF89a")]
    expected_pairs = renamed(
        predict_rows(beam_model, [a_local]), {a_local: "pair:a.png"}
    )
    expected_pairs.append(
        {
            "image": "pair:bad",
            "score": None,
            "error": "Cannot decode image (cannot identify image file 'pair:bad'): "
            "pair:bad",
        }
    )

    with beam.Pipeline(runner="DirectRunner") as pipeline:
        remote = (
            pipeline
            | "Paths" >> ImagePaths(["memtest://bucket/photos/"], [list_url])
            | "Remote" >> ScoreImages(model_url, batch_size=2)
        )
        assert_that(remote, lambda rows: assert_same_rows(rows, expected), "Same")
        from_bytes = (
            pipeline
            | "Pairs" >> beam.Create(pairs)
            | "FromBytes" >> ScoreImages(beam_model)
        )
        assert_that(
            from_bytes,
            lambda rows: assert_same_rows(rows, expected_pairs),
            "SameFromBytes",
        )
        readable = (
            pipeline
            | "Match" >> fileio.MatchFiles("memtest://bucket/photos/[ab].png")
            | "Read" >> fileio.ReadMatches()
            | "FromReadable" >> ScoreImages(beam_model)
        )
        expected_readable = [
            row for row in expected if row["image"][-6:] in ("/a.png", "/b.png")
        ]
        assert_that(
            readable,
            lambda rows: assert_same_rows(rows, expected_readable),
            "SameFromReadable",
        )
    # One load per RunInference transform in this (single) worker process,
    # not one per batch: the remote model scored 6 images 2 at a time.
    assert len(loads) == 3, loads
    assert not any(url in str(expected) for url in unreachable)


def test_the_rows_differ_when_the_scoring_policy_differs(
    tmp_path, beam_model, direct_runner, image_folder
):
    """The equality checks are not vacuous: another policy (1 crop instead
    of the model's) is caught."""
    paths = sorted(str(p) for p in image_folder.iterdir())
    expected = predict_rows(beam_model, paths)
    prefix = str(tmp_path / "out" / "scores")
    with beam.Pipeline(runner="DirectRunner") as pipeline:
        _ = (
            pipeline
            | ImagePaths([str(image_folder)])
            | ScoreImages(beam_model, crops=1)
            | WriteScoresCSV(prefix, num_shards=1)
        )
    rows = read_shards(prefix)
    assert len(rows) == len(paths) and all(r["score"] is not None for r in rows)
    with pytest.raises(AssertionError):
        assert_same_rows(rows, expected)
    assert_same_rows(rows, predict_rows(beam_model, paths, crops=1), 1e-6 + 1e-12)


def test_unscorable_images_get_error_rows_not_failed_bundles(
    tmp_path, direct_runner, image_folder
):
    """A fixed-input model whose policy cannot score a small image: that
    image's row carries the error and the others are scored."""
    tflite = pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert")
    del tflite
    from tfiqa.export import export_model
    from tfiqa.models import IQAModel

    model = IQAModel(
        backbone="resnet18",
        weights="none",
        levels=("P5",),
        head_units=(4,),
        dropout=0.0,
        scoring_policy=ScoringPolicy(crop_size=32, small_images="whole"),
    )
    manifest = export_model(
        model, str(tmp_path / "export"), formats=["tflite"], quantize=["none"]
    )
    small = image_folder / "small.png"
    Image.fromarray(make_image((20, 24), seed=9)).save(small)
    paths = sorted(str(p) for p in image_folder.iterdir())
    expected = predict_rows(manifest["tflite"]["none"], paths)
    assert [bool(r["error"]) for r in expected].count(True) == 1
    with beam.Pipeline(runner="DirectRunner") as pipeline:
        rows = (
            pipeline
            | ImagePaths([str(image_folder)])
            | ScoreImages(manifest["tflite"]["none"], batch_size=4)
        )
        assert_that(rows, lambda rows: assert_same_rows(rows, expected))
