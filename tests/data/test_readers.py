import logging
import os

import numpy as np
import pytest
import scipy.io
from conftest import make_image
from PIL import Image

from tfiqa.data.readers import READERS, read_dataset
from tfiqa.errors import ConfigError, DataError, ImageError


def _write_image(path, seed=0, size=(16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_image(size, seed)).save(path)


def _check_record(record):
    assert set(record) == {
        "image_path",
        "mos",
        "mos_raw",
        "ref_id",
        "distortion",
        "level",
    }
    assert 0.0 <= record["mos"] <= 1.0
    assert record["image_path"].startswith("/")


# ---------------------------------------------------------------- csv


def _csv_dataset(tmp_path, rows, header="image,mos", file="mos.csv"):
    for name in rows:
        _write_image(tmp_path / name[0])
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    (tmp_path / file).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_csv_default_columns_and_odd_names(tmp_path):
    rows = [("images/ss01 (1).jpg", 0.25), ("images/b c(2).png", 0.75)]
    data = _csv_dataset(tmp_path, rows)
    records = read_dataset("csv", str(data))
    assert len(records) == 2
    for r in records:
        _check_record(r)
    assert records[0]["image_path"] == str(tmp_path / "images/ss01 (1).jpg")
    assert records[0]["ref_id"] == "images/ss01 (1).jpg"
    assert records[1]["mos"] == pytest.approx(0.75)
    assert records[1]["distortion"] == "" and records[1]["level"] == 0


def test_csv_score_range_direction_and_ref_column(tmp_path):
    rows = [("a.png", 1.0, "r1"), ("b.png", 5.0, "r1"), ("c.png", 2.0, "r2")]
    data = _csv_dataset(tmp_path, rows, header="file,dmos,src", file="s.csv")
    records = read_dataset(
        "csv",
        str(data),
        file="s.csv",
        image_column="file",
        score_column="dmos",
        ref_column="src",
        score_range=[1, 5],
        higher_is_better=False,
        group_duplicates=False,  # the three files hold the same picture
    )
    assert [r["mos"] for r in records] == pytest.approx([1.0, 0.0, 0.75])
    assert [r["mos_raw"] for r in records] == [1.0, 5.0, 2.0]
    assert [r["ref_id"] for r in records] == ["r1", "r1", "r2"]


def test_csv_image_dir(tmp_path):
    _write_image(tmp_path / "pics" / "a.png")
    (tmp_path / "mos.csv").write_text("image,mos\na.png,0.5\n")
    records = read_dataset("csv", str(tmp_path), image_dir="pics")
    assert records[0]["image_path"] == str(tmp_path / "pics" / "a.png")


def test_csv_out_of_range_asks_for_score_range(tmp_path):
    data = _csv_dataset(tmp_path, [("a.png", 3.5)])
    with pytest.raises(DataError, match="score_range") as info:
        read_dataset("csv", str(data))
    assert "3.5" in str(info.value)


def test_csv_without_score_column_lists_columns(tmp_path):
    data = _csv_dataset(tmp_path, [("a.png", 0.5)], header="image,quality")
    with pytest.raises(DataError, match="'mos'") as info:
        read_dataset("csv", str(data))
    assert "'image', 'quality'" in str(info.value)
    assert "mos.csv" in str(info.value)


def test_csv_missing_image_errors_or_skips(tmp_path, caplog):
    data = _csv_dataset(tmp_path, [("a.png", 0.5)])
    with open(data / "mos.csv", "a") as f:
        f.write("gone.png,0.25\n")
    with pytest.raises(ImageError, match="gone.png") as info:
        read_dataset("csv", str(data))
    assert "mos.csv" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="tfiqa.data"):
        records = read_dataset("csv", str(data), skip_bad=True)
    assert len(records) == 1
    assert "gone.png" in caplog.text and "Skipped 1 of 2" in caplog.text


def test_csv_blank_score_is_an_error(tmp_path):
    data = _csv_dataset(tmp_path, [("a.png", "")])
    with pytest.raises(DataError, match="row 2"):
        read_dataset("csv", str(data))


def test_read_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'csv'"):
        read_dataset("csvv", str(tmp_path))
    with pytest.raises(DataError, match="not found"):
        read_dataset("csv", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="Score CSV not found"):
        read_dataset("csv", str(tmp_path))
    with pytest.raises(ConfigError, match="score_colum") as info:
        read_dataset("csv", str(tmp_path), score_colum="x")
    assert "score_column" in str(info.value)


def test_registry_lists_csv():
    assert "csv" in READERS.names()


# ---------------------------------------------------------------- helpers


def _tiny(path, seed=0, fmt=None):
    """Writes a tiny 8x8 image; fast enough to create hundreds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
        path, format=fmt
    )


def _cell(strings, shape):
    cell = np.empty(len(strings), dtype=object)
    cell[:] = strings
    return cell.reshape(shape)


# ---------------------------------------------------------------- live


def _live(tmp_path, n_missing=0):
    from tfiqa.data.readers.live import LIVE_FOLDERS

    refs = ["bikes.bmp", "caps.bmp", "house.bmp"]
    names, dmos, orgs = [], [], []
    k = 0
    for folder, n in LIVE_FOLDERS:
        for i in range(1, n + 1):
            is_org = int(i % 5 == 0)
            names.append(refs[k % 3])
            dmos.append(0.0 if is_org else 10.0 + (k % 90))
            orgs.append(is_org)
            if k >= n_missing:
                _tiny(tmp_path / folder / f"img{i}.bmp")
            k += 1
    dmos[0] = -2.5  # realigned DMOS can leave the nominal range
    scipy.io.savemat(
        tmp_path / "dmos_realigned.mat",
        {
            "dmos_new": np.array([dmos]),
            "dmos_std": np.ones((1, len(dmos))),
            "orgs": np.array([orgs], dtype=np.uint8),
        },
    )
    scipy.io.savemat(
        tmp_path / "refnames_all.mat", {"refnames_all": _cell(names, (1, -1))}
    )
    return tmp_path, dmos, orgs, names


def test_live(tmp_path):
    data, dmos, orgs, names = _live(tmp_path)
    records = read_dataset("live", str(data))
    assert len(records) == 982 - sum(orgs)
    first = records[0]
    _check_record(first)
    assert first["image_path"] == str(tmp_path / "jp2k" / "img1.bmp")
    assert first["mos_raw"] == -2.5 and first["mos"] == 1.0  # clipped
    assert first["ref_id"] == "bikes" and first["distortion"] == "jp2k"
    second = records[1]
    assert second["mos"] == pytest.approx(1 - 11.0 / 100)
    assert second["ref_id"] == "caps"
    # img1 of jpeg is entry 227 (0-based) in the .mat order
    jpeg1 = next(r for r in records if r["image_path"].endswith("jpeg/img1.bmp"))
    assert jpeg1["mos_raw"] == dmos[227] and jpeg1["ref_id"] == names[227][:-4]
    assert {r["distortion"] for r in records} == {
        "jp2k",
        "jpeg",
        "wn",
        "gblur",
        "fastfading",
    }
    with_orgs = read_dataset("live", str(data), include_originals=True)
    assert len(with_orgs) == 982
    originals = [r for r in with_orgs if r["distortion"] == ""]
    assert len(originals) == sum(orgs)
    assert all(r["mos"] == 1.0 and r["level"] == 0 for r in originals)


def test_live_missing_image_and_wrong_length(tmp_path):
    data, *_ = _live(tmp_path, n_missing=1)
    with pytest.raises(ImageError, match="img1.bmp") as info:
        read_dataset("live", str(data))
    assert "dmos_realigned.mat" in str(info.value)
    scipy.io.savemat(
        data / "refnames_all.mat", {"refnames_all": _cell(["a.bmp"] * 5, (1, -1))}
    )
    with pytest.raises(DataError, match="982"):
        read_dataset("live", str(data))
    scipy.io.savemat(data / "refnames_all.mat", {"names": _cell(["a"], (1, 1))})
    with pytest.raises(DataError, match="refnames_all.*Received variables: names"):
        read_dataset("live", str(data))


# ---------------------------------------------------------------- csiq


def _csiq(tmp_path, rows):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "all_by_distortion"
    ws = wb.create_sheet("all_by_image")
    # Like the real file: a leading empty column and a caption above the table.
    ws.cell(row=1, column=2, value="CSIQ DMOS")
    header = ["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]
    for j, name in enumerate(header):
        ws.cell(row=3, column=2 + j, value=name)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            ws.cell(row=4 + i, column=2 + j, value=value)
    wb.save(tmp_path / "csiq.DMOS.xlsx")
    return tmp_path


def test_csiq(tmp_path):
    rows = [
        (1600, 1, "noise", 1, 0.06, 0.062),
        (1600, 5, "jpeg 2000", 3, 0.1, 0.4),
        ("sunset_sparrow", 4, "fnoise", 2, 0.1, 0.25),
        ("aerial_city", 6, "blur", 5, 0.1, 0.9),
    ]
    _tiny(tmp_path / "dst_imgs/awgn/1600.AWGN.1.png")
    _tiny(tmp_path / "dst_imgs/jpeg2000/1600.jpeg2000.3.png")
    _tiny(tmp_path / "dst_imgs/fnoise/sunset_sparrow.fnoise.2.png")
    # A differently cased file on disk is still found.
    _tiny(tmp_path / "dst_imgs/blur/aerial_city.blur.5.png")
    records = read_dataset("csiq", str(_csiq(tmp_path, rows)))
    assert [r["ref_id"] for r in records] == [
        "1600",
        "1600",
        "sunset_sparrow",
        "aerial_city",
    ]
    assert [r["distortion"] for r in records] == [
        "awgn",
        "jpeg2000",
        "fnoise",
        "blur",
    ]
    assert [r["level"] for r in records] == [1, 3, 2, 5]
    assert [r["mos"] for r in records] == pytest.approx([0.938, 0.6, 0.75, 0.1])
    assert records[0]["mos_raw"] == pytest.approx(0.062)
    assert records[0]["image_path"].endswith("dst_imgs/awgn/1600.AWGN.1.png")
    assert records[3]["image_path"].endswith("aerial_city.blur.5.png")


def test_csiq_bad_type_and_missing_image(tmp_path):
    _csiq(tmp_path, [(1600, 1, "smudge", 1, 0.1, 0.2)])
    with pytest.raises(DataError, match="'smudge'"):
        read_dataset("csiq", str(tmp_path))
    _csiq(tmp_path, [(1600, 1, "noise", 2, 0.1, 0.2)])
    with pytest.raises(ImageError, match=r"1600\.AWGN\.2\.png"):
        read_dataset("csiq", str(tmp_path))
    with pytest.raises(DataError, match="sheet"):
        read_dataset("csiq", str(tmp_path), sheet="nope")


# ---------------------------------------------------------------- tid2013


def test_tid2013(tmp_path):
    lines = ["5.51429 i01_01_1.bmp", "4.00000 i01_08_3.bmp", "0.24242 i25_24_5.bmp"]
    (tmp_path / "mos_with_names.txt").write_text("\r\n".join(lines) + "\r\n")
    _tiny(tmp_path / "distorted_images/i01_01_1.bmp")
    _tiny(tmp_path / "distorted_images/i01_08_3.bmp")
    _tiny(tmp_path / "distorted_images/I25_24_5.BMP")  # case differs on disk
    records = read_dataset("tid2013", str(tmp_path))
    assert [r["ref_id"] for r in records] == ["I01", "I01", "I25"]
    assert [r["distortion"] for r in records] == [
        "additive_gaussian_noise",
        "gaussian_blur",
        "sparse_sampling_reconstruction",
    ]
    assert [r["level"] for r in records] == [1, 3, 5]
    assert records[0]["mos"] == pytest.approx(5.51429 / 9)
    assert records[2]["image_path"].endswith("distorted_images/I25_24_5.BMP")


def test_tid2013_bad_line(tmp_path):
    (tmp_path / "mos_with_names.txt").write_text("5.0 notaname.bmp\n")
    with pytest.raises(DataError, match="line 1.*notaname"):
        read_dataset("tid2013", str(tmp_path))


# ---------------------------------------------------------------- kadid10k


def test_kadid10k(tmp_path):
    rows = [
        "dist_img,ref_img,dmos,var",
        "I01_01_01.png,I01.png,4.57,0.496",
        "I01_25_05.png,I01.png,1.00,0.1",
        "I81_10_03.png,I81.png,3.00,0.2",
    ]
    (tmp_path / "dmos.csv").write_text("\n".join(rows) + "\n")
    for name in ("I01_01_01", "I01_25_05", "I81_10_03"):
        _tiny(tmp_path / "images" / f"{name}.png")
    records = read_dataset("kadid10k", str(tmp_path))
    assert [r["ref_id"] for r in records] == ["I01", "I01", "I81"]
    assert [r["distortion"] for r in records] == [
        "gaussian_blur",
        "contrast_change",
        "jpeg",
    ]
    assert [r["level"] for r in records] == [1, 5, 3]
    assert [r["mos"] for r in records] == pytest.approx([3.57 / 4, 0.0, 0.5])


def test_kadid10k_without_score_column(tmp_path):
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,mos\nI01_01_01.png,I01,3\n")
    with pytest.raises(DataError, match="'dmos'.*'dist_img', 'ref_img', 'mos'"):
        read_dataset("kadid10k", str(tmp_path))


# ---------------------------------------------------------------- koniq10k


def test_koniq10k(tmp_path):
    header = "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"
    rows = [
        "826373.jpg,0,0,25,73,7,105,3.828571429,0.5,77.38",
        "100054.jpg,1,2,3,4,5,15,1.0,0.6,10.0",
    ]
    (tmp_path / "koniq10k_scores_and_distributions.csv").write_text(
        "\n".join([header, *rows]) + "\n"
    )
    _tiny(tmp_path / "1024x768/826373.jpg", fmt="JPEG")
    _tiny(tmp_path / "1024x768/100054.jpg", fmt="JPEG")
    records = read_dataset("koniq10k", str(tmp_path))
    assert records[0]["mos"] == pytest.approx((3.828571429 - 1) / 4)
    assert records[0]["ref_id"] == "826373.jpg"
    assert records[1]["mos"] == 0.0 and records[1]["mos_raw"] == 1.0


# ---------------------------------------------------------------- livec


def test_livec_drops_training_images(tmp_path):
    names = [f"t{i}.bmp" for i in range(1, 8)] + ["10.JPG", "100.bmp"]
    mos = [50.0] * 7 + [63.9871, 25.0]
    (tmp_path / "Data").mkdir()
    scipy.io.savemat(
        tmp_path / "Data/AllImages_release.mat",
        {"AllImages_release": _cell(names, (-1, 1))},
    )
    scipy.io.savemat(
        tmp_path / "Data/AllMOS_release.mat", {"AllMOS_release": np.array([mos])}
    )
    _tiny(tmp_path / "Images/10.JPG", fmt="JPEG")
    _tiny(tmp_path / "Images/100.bmp")
    records = read_dataset("livec", str(tmp_path))
    assert [r["ref_id"] for r in records] == ["10.JPG", "100.bmp"]
    assert records[0]["mos"] == pytest.approx(0.639871)
    assert records[0]["mos_raw"] == pytest.approx(63.9871)


# ---------------------------------------------------------------- spaq


def test_spaq(tmp_path):
    import pandas as pd

    (tmp_path / "Annotations").mkdir()
    pd.DataFrame(
        {
            "Image name": ["00001.jpg", "00002.jpg"],
            "MOS": [42.0, 87.5],
            "Brightness": [40, 50],
            "Colorfulness": [40, 50],
            "Contrast": [40, 50],
            "Noisiness": [40, 50],
            "Sharpness": [40, 50],
        }
    ).to_excel(
        tmp_path / "Annotations/MOS and Image attribute scores.xlsx", index=False
    )
    _tiny(tmp_path / "TestImage/00001.jpg", fmt="JPEG")
    _tiny(tmp_path / "TestImage/00002.jpg", fmt="JPEG")
    records = read_dataset("spaq", str(tmp_path))
    assert [r["mos"] for r in records] == pytest.approx([0.42, 0.875])
    assert records[1]["image_path"] == str(tmp_path / "TestImage/00002.jpg")


# ---------------------------------------------------------------- biq2021


def test_biq2021_official_csvs(tmp_path):
    (tmp_path / "Train.csv").write_text(
        "Image Name,MOS\nss03 (3753).jpg,0.83292\nss03 (6190).jpg,-0.02777\n"
    )
    (tmp_path / "Test (Images and MOS).csv").write_text(
        "Image Name,MOS\nss01 (151).jpg,0.1931\n"
    )
    for name in ("ss03 (3753).jpg", "ss03 (6190).jpg", "ss01 (151).jpg"):
        _tiny(tmp_path / "Images" / name, fmt="JPEG")
    # The three files hold the same picture: keep one reference per file.
    train = read_dataset(
        "biq2021", str(tmp_path), split="train", group_duplicates=False
    )
    test = read_dataset("biq2021", str(tmp_path), split="test")
    both = read_dataset("biq2021", str(tmp_path))
    assert [r["ref_id"] for r in train] == ["ss03 (3753).jpg", "ss03 (6190).jpg"]
    assert train[1]["mos"] == 0.0 and train[1]["mos_raw"] == pytest.approx(-0.02777)
    assert [r["ref_id"] for r in test] == ["ss01 (151).jpg"]
    assert len(both) == 3
    with pytest.raises(ConfigError, match="split"):
        read_dataset("biq2021", str(tmp_path), split="val")


# ---------------------------------------------------------------- distorted


def test_distorted(tmp_path):
    rows = [
        "image,ref,distortion,level",
        "pristine/a.png,a.png,,0",
        "gaussian_blur/a_3.png,a.png,gaussian_blur,3",
        "jpeg/b_5.png,b.png,jpeg,5",
    ]
    (tmp_path / "distortions.csv").write_text("\n".join(rows) + "\n")
    for row in rows[1:]:
        _tiny(tmp_path / row.split(",")[0])
    records = read_dataset("distorted", str(tmp_path))
    assert [r["mos"] for r in records] == pytest.approx([1.0, 0.4, 0.0])
    assert [r["level"] for r in records] == [0, 3, 5]
    assert [r["distortion"] for r in records] == ["", "gaussian_blur", "jpeg"]
    assert [r["ref_id"] for r in records] == ["a.png", "a.png", "b.png"]

    rows = [
        r + f",{p}" for r, p in zip(rows, ["pseudo_mos", 1.0, 0.7, 0.1], strict=True)
    ]
    (tmp_path / "distortions.csv").write_text("\n".join(rows) + "\n")
    records = read_dataset("distorted", str(tmp_path))
    assert [r["mos"] for r in records] == pytest.approx([1.0, 0.7, 0.1])

    (tmp_path / "distortions.csv").write_text("image,ref,distortion,level\nx,a,b,9\n")
    with pytest.raises(DataError, match="level"):
        read_dataset("distorted", str(tmp_path))


def photo(seed, size=96):
    """A distinct smooth random photo-like RGB image (size, size, 3)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return np.asarray(
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    )


def write_near_duplicates(folder):
    """Six photos, two of them also saved re-encoded and slightly resized."""
    from PIL import Image

    names = []
    for i in range(6):
        Image.fromarray(photo(i)).save(folder / f"p{i}.png")
        names.append(f"p{i}.png")
    Image.fromarray(photo(0)).save(folder / "p0_copy.jpg", quality=70)
    Image.fromarray(photo(1)).resize((90, 90)).save(folder / "p1_small.jpg")
    names += ["p0_copy.jpg", "p1_small.jpg"]
    rows = "\n".join(f"{n},{0.1 * k:.1f}" for k, n in enumerate(names))
    (folder / "mos.csv").write_text("image,mos\n" + rows + "\n")


def test_near_duplicate_photos_share_a_reference_and_a_split(tmp_path):
    from tfiqa.data.splits import make_splits

    write_near_duplicates(tmp_path)
    records = read_dataset("csv", str(tmp_path))
    ref = {os.path.basename(r["image_path"]): r["ref_id"] for r in records}
    assert ref["p0_copy.jpg"] == ref["p0.png"] == "p0.png"
    assert ref["p1_small.jpg"] == ref["p1.png"]
    assert len(set(ref.values())) == 6  # the other photos stay apart
    for split in make_splits(records, n=3, val_ratio=0.3, test_ratio=0.3, seed=0):
        part = {
            os.path.basename(p): name
            for name in ("train", "val", "test")
            for p in split[name]
        }
        assert part["p0.png"] == part["p0_copy.jpg"]
        assert part["p1.png"] == part["p1_small.jpg"]
    # Opt-out: one reference per file.
    apart = read_dataset("csv", str(tmp_path), group_duplicates=False)
    assert len({r["ref_id"] for r in apart}) == 8


def test_biq2021_groups_near_duplicates(tmp_path):
    from PIL import Image

    (tmp_path / "Images").mkdir()
    Image.fromarray(photo(7)).save(tmp_path / "Images" / "ss03 (1299).jpg")
    Image.fromarray(photo(7)).save(tmp_path / "Images" / "ss03 (4011).jpg", quality=60)
    Image.fromarray(photo(8)).save(tmp_path / "Images" / "ss01 (1).jpg")
    (tmp_path / "Train.csv").write_text("Image Name,MOS\nss03 (1299).jpg,0.5\n")
    (tmp_path / "Test.csv").write_text(
        "Image Name,MOS\nss03 (4011).jpg,0.6\nss01 (1).jpg,0.2\n"
    )
    refs = [r["ref_id"] for r in read_dataset("biq2021", str(tmp_path))]
    assert refs == ["ss03 (1299).jpg", "ss03 (1299).jpg", "ss01 (1).jpg"]
