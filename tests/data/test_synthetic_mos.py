from tfiqa.data.pristine import generate_pristine
from tfiqa.data.synthetic_mos import synthesize_mos_set


def test_synthesis_reports_progress_on_stderr_only(tmp_path, monkeypatch, capsys):
    paths = generate_pristine(str(tmp_path / "p"), count=3, size=40, seed=0)
    types, levels = ["white_noise", "jpeg"], [2, 5]
    monkeypatch.setenv("TFIQA_PROGRESS", "1")
    shown = synthesize_mos_set(paths, str(tmp_path / "a"), types, levels, 0)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("Synthesising pseudo-MOS labels\n")
    assert "12/12" in err  # 3 images x 2 types x 2 levels

    hidden = synthesize_mos_set(paths, str(tmp_path / "b"), types, levels, 0, verbose=0)
    assert capsys.readouterr() == ("", "")
    # The bar changes nothing in what is written.
    with open(f"{shown}/distortions.csv") as a, open(f"{hidden}/distortions.csv") as b:
        index = a.read()
        assert index == b.read()
    assert len(index.splitlines()) == 1 + 3 + 12
