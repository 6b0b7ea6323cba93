"""`IQAModelHandler` refuses contradictory scoring options before any work."""

import pytest

pytest.importorskip(
    "apache_beam", reason="apache-beam is not installed: pip install '.[beam]'"
)

from tfiqa.beam import ScoreImages  # noqa: E402
from tfiqa.beam.model_handler import IQAModelHandler  # noqa: E402
from tfiqa.errors import TfiqaError  # noqa: E402


@pytest.mark.parametrize("build", [IQAModelHandler, ScoreImages])
def test_crops_and_full_together_are_refused(build):
    with pytest.raises(TfiqaError, match="either crops or full=True, not both"):
        build("mobile-mnv3s", crops=2, full=True)


def test_score_images_passes_its_options_to_the_handler():
    handler = ScoreImages("mobile-mnv3s", crops=3, batch_size=4).handler
    assert (handler.crops, handler.full, handler.batch_size) == (3, False, 4)
