"""`tfiqa evaluate --model` shows its scoring progress on stderr only."""

import json

import pytest
from click.testing import CliRunner
from conftest import make_image
from PIL import Image

from tfiqa.cli import cli
from tfiqa.scoring_policy import ScoringPolicy


@pytest.mark.slow
def test_evaluate_model_progress_leaves_stdout_unchanged(tmp_path):
    from tfiqa.models import IQAModel

    root = tmp_path / "data"
    root.mkdir()
    lines = ["image,mos"]
    for i in range(5):
        Image.fromarray(make_image((40, 48), seed=i)).save(root / f"{i}.png")
        lines.append(f"{i}.png,{0.2 * i + 0.1:.2f}")
    (root / "mos.csv").write_text("\n".join(lines) + "\n")
    model_path = str(tmp_path / "model.keras")
    IQAModel(
        backbone="resnet18",
        weights="none",
        head_units=(8,),
        scoring_policy=ScoringPolicy(crop_size=32),
    ).save(model_path)

    def evaluate(progress, output):
        args = ["evaluate", "--model", model_path, "--dataset", "csv"]
        args += ["--data-dir", str(root), "--output", str(tmp_path / output)]
        result = CliRunner(env={"TFIQA_PROGRESS": progress}).invoke(cli, args)
        assert result.exit_code == 0, result.output
        return result

    shown, hidden = evaluate("1", "a"), evaluate("0", "b")
    assert "Scoring\n" in shown.stderr and "5/5" in shown.stderr
    assert "Scoring" not in hidden.stderr and "5/5" not in hidden.stderr
    assert shown.stdout == hidden.stdout
    assert json.loads(shown.stdout)["n"] == 5
    written = [(tmp_path / d / "predictions.csv").read_text() for d in "ab"]
    assert written[0] == written[1]
