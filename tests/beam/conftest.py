"""Fixtures of the Beam tests: a tiny model and a check that Beam runs here."""

import warnings

import pytest

BEAM_MISSING = (
    "apache-beam is not installed, so the Beam pipeline is NOT tested: "
    "pip install -e '.[beam]' (make test installs it)"
)


@pytest.fixture(scope="session")
def beam_model(tmp_path_factory):
    """A tiny random ResNet-18 `.keras` scoring model (32 px crops)."""
    from conftest import tiny_resnet

    path = tmp_path_factory.mktemp("beam_model") / "model.keras"
    tiny_resnet().save(path)
    return str(path)


@pytest.fixture(scope="session")
def direct_runner():
    """Skips (with a warning) only if Beam's local runner cannot start here."""
    import apache_beam as beam

    try:
        with beam.Pipeline(runner="DirectRunner") as pipeline:
            _ = pipeline | beam.Create([1, 2]) | beam.Map(lambda x: x + 1)
    except Exception as e:  # any failure to start is the environment's
        message = f"Beam's DirectRunner cannot start here, pipelines NOT tested: {e}"
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
