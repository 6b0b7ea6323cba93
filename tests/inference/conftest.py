import pytest

from tfiqa.models import IQAModel
from tfiqa.scoring_policy import ScoringPolicy

CROP = 32


@pytest.fixture(scope="session")
def tiny_model():
    return IQAModel(
        backbone="resnet18",
        weights="none",
        levels=("P3", "P5"),
        head_units=(8,),
        dropout=0.0,
        scoring_policy=ScoringPolicy(crop_size=CROP),
    )


@pytest.fixture(scope="session")
def model_path(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    tiny_model.save(path)
    return str(path)
