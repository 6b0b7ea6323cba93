import logging

import numpy as np
import pytest
from conftest import make_image

from tfiqa.errors import ConfigError, TfiqaError
from tfiqa.evaluation.distortion_ranking import (
    all_types,
    distortion_ranking,
    is_weak,
    type_summary,
    weak_types,
)

# Fast types of different families (blur, noise, quantisation, tone, spatial).
TYPES = ["gaussian_blur", "white_noise", "quantization", "brighten", "pixelate"]
LEVELS = [1, 2, 3, 4, 5]


def small_images():
    # Distinct sizes, so a fake scorer finds each image's pristine by shape;
    # intensities kept in [64, 191] so a mean shift never clips.
    sizes = [(40, 48), (48, 40), (44, 44)]
    return [make_image(s, seed=i) // 2 + 64 for i, s in enumerate(sizes)]


def mad_scorer(images, sign=-1.0, remove_mean=False):
    """sign x mean absolute difference to the image's pristine version;
    with `remove_mean`, each image's mean is subtracted first, so a global
    intensity shift is invisible to it."""
    refs = {im.shape: im.astype(np.float64) for im in images}

    def centred(x):
        return x - x.mean() if remove_mean else x

    def score(batch):
        return np.array(
            [
                sign
                * np.abs(centred(b.astype(np.float64)) - centred(refs[b.shape])).mean()
                for b in batch
            ]
        )

    return score


@pytest.fixture(scope="module")
def images():
    return small_images()


@pytest.fixture(scope="module")
def ranked(images):
    return distortion_ranking(mad_scorer(images), images, types=TYPES, seed=3)


def test_minus_distance_to_pristine_ranks_every_type_right(ranked):
    assert list(ranked["types"]) == TYPES
    for name in TYPES:
        summary = ranked["types"][name]
        assert summary["srcc"] == pytest.approx(1.0), name
        assert summary["srcc_per_image"] == pytest.approx([1.0] * 3), name
        assert summary["pairs_right"] == 1.0, name
        means = [summary["mean_scores"][lv] for lv in LEVELS]
        assert np.all(np.diff(means) < 0), (name, means)
        assert means[0] < ranked["pristine_score"] == 0.0
    assert ranked["num_images"] == 3 and ranked["levels"] == LEVELS
    assert weak_types(ranked) == []


def test_flipped_sign_ranks_every_type_backwards(images):
    flipped = distortion_ranking(mad_scorer(images, sign=1.0), images, types=TYPES[:2])
    for summary in flipped["types"].values():
        assert summary["srcc"] == pytest.approx(-1.0)
        assert summary["pairs_right"] == 0.0
    assert [n for n, _ in weak_types(flipped)] == TYPES[:2]


def test_direction_comes_from_the_scorer(images):
    # A lower-is-better scorer (a distance) ranks right when its scores rise.
    distance = mad_scorer(images, sign=1.0)
    distance.higher_is_better = False
    result = distortion_ranking(distance, images, types=["white_noise"])
    assert result["higher_is_better"] is False
    assert result["types"]["white_noise"]["srcc"] == pytest.approx(1.0)
    forced = distortion_ranking(
        distance, images, types=["white_noise"], higher_is_better=True
    )
    assert forced["types"]["white_noise"]["srcc"] == pytest.approx(-1.0)


def test_scorer_blind_to_one_type_gives_zero_for_it(images):
    blind = mad_scorer(images, remove_mean=True)  # cannot see a mean shift
    result = distortion_ranking(blind, images, types=["mean_shift", "gaussian_blur"])
    shift = result["types"]["mean_shift"]
    assert shift["srcc"] == 0.0 and shift["pairs_right"] == 0.0
    assert result["types"]["gaussian_blur"]["srcc"] == pytest.approx(1.0)
    assert [n for n, _ in weak_types(result)] == ["mean_shift"]


def test_type_summary_averages_per_image_order():
    scores = [[5, 4, 3, 2, 1], [1, 2, 3, 4, 5], [2, 2, 2, 2, 2], [5, 4, 3, 1, 2]]
    summary = type_summary(LEVELS, scores)
    assert summary["srcc_per_image"] == pytest.approx([1.0, -1.0, 0.0, 0.9])
    assert summary["srcc"] == pytest.approx(0.9 / 4)
    # Right steps: 4 + 0 + 0 (ties) + 3 of 16.
    assert summary["pairs_right"] == pytest.approx(7 / 16)
    assert summary["mean_scores"] == pytest.approx(
        {1: 3.25, 2: 3, 3: 2.75, 4: 2.25, 5: 2.5}
    )
    lower = type_summary(LEVELS, scores, higher_is_better=False)
    assert lower["srcc_per_image"] == pytest.approx([-1.0, 1.0, 0.0, -0.9])
    assert lower["pairs_right"] == pytest.approx(5 / 16)


def test_same_seed_same_result_other_seed_other_noise(images, ranked):
    again = distortion_ranking(mad_scorer(images), images, types=TYPES[1:2], seed=3)
    assert again["types"]["white_noise"] == ranked["types"]["white_noise"]
    other = distortion_ranking(mad_scorer(images), images, types=TYPES[1:2], seed=4)
    assert other["types"]["white_noise"] != ranked["types"]["white_noise"]


def test_unknown_type_names_the_valid_ones(images):
    with pytest.raises(ConfigError, match="gaussian_blurr") as error:
        distortion_ranking(mad_scorer(images), images, types="jpeg,gaussian_blurr")
    message = str(error.value)
    assert "\n" not in message
    assert "Did you mean 'gaussian_blur'" in message
    assert all(name in message for name in all_types())


@pytest.mark.parametrize("levels", [[3], [1, 6], [3, 2], [2, 2, 3]])
def test_bad_levels_are_refused(images, levels):
    with pytest.raises(TfiqaError, match="levels"):
        distortion_ranking(mad_scorer(images), images, types="jpeg", levels=levels)


def test_scorer_returning_wrong_count_is_refused(images):
    with pytest.raises(TfiqaError, match="one finite score per image"):
        distortion_ranking(lambda batch: np.zeros(1), images, types="jpeg")
    with pytest.raises(TfiqaError, match="at least one image"):
        distortion_ranking(mad_scorer(images), [], types="jpeg")


def test_all_types_is_every_listed_type():
    from tfiqa.distortion_names import KADID10K_TYPES, LIVE_TYPES

    assert all_types() == [*KADID10K_TYPES, *LIVE_TYPES]


def test_progress_is_logged_and_types_reported_as_done(images, caplog):
    done = []
    with caplog.at_level(logging.INFO, logger="tfiqa.evaluation.distortion_ranking"):
        distortion_ranking(
            mad_scorer(images[:2]),
            images[:2],
            types=["quantization", "brighten"],
            levels=[1, 5],
            log_every=4,
            on_type=lambda name, summary: done.append((name, summary["srcc"])),
        )
    # 2 types x 2 images x 2 levels = 8 scored images: logged at 4 and 8.
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Scored 4 of 8 distorted images (quantization)",
        "Scored 8 of 8 distorted images (brighten)",
    ]
    assert [name for name, _ in done] == ["quantization", "brighten"]
    assert [srcc for _, srcc in done] == pytest.approx([1.0, 1.0])


def test_a_mean_equal_to_the_threshold_is_not_weak():
    # Per-image SRCCs 1, 0.4, 0.7, -0.1 average to 0.4999999999999999.
    scores = [[5, 4, 3, 2, 1], [5, 1, 4, 3, 2], [5, 3, 2, 4, 1], [4, 3, 1, 2, 5]]
    summary = type_summary(LEVELS, scores)
    assert summary["srcc"] == pytest.approx(0.5)
    assert not is_weak(summary["srcc"])
    assert is_weak(0.49)
    assert weak_types({"types": {"jpeg": summary}}) == []
