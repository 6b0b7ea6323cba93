"""The CLI keeps TensorFlow's native log lines off stderr unless `-v`."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_resnet
from PIL import Image

# absl's prefix ("I0000 00:00:... file.cc:12]") and the known start-up notices.
NATIVE_LOG = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d|absl::InitializeLog|oneDNN|cudart|cuInit"
    r"|cpu_feature_guard",
    re.MULTILINE,
)


def run_cli(*args):
    env = {**os.environ}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, "-m", "tfiqa.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def native_lines(stderr):
    return [line for line in stderr.splitlines() if NATIVE_LOG.search(line)]


@pytest.fixture(scope="module")
def tensorflow_is_noisy():
    """Whether importing TensorFlow here prints native lines at all; without
    them the quiet checks would pass on nothing."""
    env = {**os.environ}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    stderr = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tensorflow as tf; tf.config.list_physical_devices()",
        ],
        capture_output=True,
        text=True,
        env=env,
    ).stderr
    return bool(native_lines(stderr))


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("quiet")
    model = tiny_resnet()
    model.save(root / "model.keras")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"im{i}.png")
    return root / "model.keras", images


def require_noise(noisy):
    if not noisy:
        pytest.skip("TensorFlow prints no native log lines on this machine")


@pytest.mark.slow
def test_predict_and_export_keep_stderr_free_of_tensorflow_lines(
    model_and_images, tensorflow_is_noisy, tmp_path
):
    require_noise(tensorflow_is_noisy)
    model, images = model_and_images
    predicted = run_cli("predict", "--model", str(model), str(images))
    assert predicted.returncode == 0, predicted.stderr
    assert native_lines(predicted.stderr) == []
    assert "Scored 2 of 2 images" in predicted.stderr
    exported = run_cli(
        "export",
        "--model",
        str(model),
        "--output",
        str(tmp_path / "out"),
        "--format",
        "saved_model",
    )
    assert exported.returncode == 0, exported.stderr
    assert native_lines(exported.stderr) == []


@pytest.mark.slow
def test_verbose_shows_tensorflow_lines_again(model_and_images, tensorflow_is_noisy):
    require_noise(tensorflow_is_noisy)
    model, images = model_and_images
    result = run_cli("-v", "predict", "--model", str(model), str(images))
    assert result.returncode == 0, result.stderr
    assert native_lines(result.stderr)


@pytest.mark.slow
def test_train_keeps_stderr_free_of_tensorflow_lines(tensorflow_is_noisy, tmp_path):
    require_noise(tensorflow_is_noisy)
    result = run_cli(
        "train",
        "--workdir",
        str(tmp_path / "run"),
        "--set",
        "stages.order=[rank]",
        "--set",
        "stages.rank.schedule.epochs=1",
        "--set",
        "stages.rank.schedule.steps_per_epoch=2",
        "--set",
        "stages.rank.schedule.val_steps=1",
        "--set",
        "stages.rank.types=[jpeg]",
        "--set",
        "data.pristine_count=6",
        "--set",
        "data.crop_size=32",
    )
    assert result.returncode == 0, result.stderr
    assert native_lines(result.stderr) == []
    assert (tmp_path / "run" / "model.keras").exists()
