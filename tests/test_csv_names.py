"""`csv_name` / `image_path`: UTF-8 names in result CSVs, reversible."""

import csv
import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tfiqa
from tfiqa.csv_names import csv_name, image_path


@settings(max_examples=60, deadline=None)
@given(name=st.binary(max_size=40))
def test_every_byte_string_round_trips_through_utf8(name):
    text = csv_name(name)
    text.encode("utf-8")  # strict: no surrogates left
    assert os.fsencode(image_path(text)) == name


@settings(max_examples=60, deadline=None)
@given(name=st.text(alphabet=st.sampled_from('\\xX0aF9é\n,"')))
def test_names_made_of_escape_characters_round_trip(name):
    assert image_path(csv_name(name)) == name


@pytest.mark.parametrize(
    "name, written",
    [
        (b"plain.png", "plain.png"),
        ("ünïcödé.png".encode(), "ünïcödé.png"),
        (b"caf\xe9.png", "caf\\xe9.png"),
        (b"a\\b.png", "a\\\\b.png"),
        (b"lit\\xe9.png", "lit\\\\xe9.png"),  # the text \xe9, not a byte
    ],
)
def test_escape_examples(name, written):
    assert csv_name(name) == written
    assert csv_name(os.fsdecode(name)) == written


def test_hand_written_backslashes_read_as_themselves():
    assert image_path("C:\\photos\\a.png") == "C:\\photos\\a.png"


def test_a_predict_csv_with_undecodable_names_reads_with_csv_and_pandas():
    from tfiqa.inference.predict import rows_to_csv

    names = [os.fsdecode(b"/p/caf\xe9,1.png"), os.fsdecode(b"/p/\xff\\n.png")]
    rows = [{"image": n, "score": 0.5, "error": ""} for n in names]
    data = rows_to_csv(rows).encode("utf-8")
    read = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert [tfiqa.image_path(r["image"]) for r in read] == names
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(io.BytesIO(data), keep_default_na=False)
    assert [tfiqa.image_path(n) for n in frame["image"]] == names
