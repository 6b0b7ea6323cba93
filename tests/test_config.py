import pytest
import yaml

from tfiqa import config as config_lib
from tfiqa.config_limits import leaf_fields
from tfiqa.errors import ConfigError


def test_defaults_are_complete_and_valid():
    config = config_lib.ExperimentConfig().validate()
    assert config.data.crop_size == 224
    assert config.stages.order == ["rank", "finetune"]


def test_yaml_merge_overrides_only_given_keys(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "model:\n  backbone: vgg16\n"
        "stages:\n  finetune:\n    optimizer:\n      learning_rate: 1e-3\n"
    )
    config = config_lib.load_config(str(path))
    assert config.model.backbone == "vgg16"
    # YAML reads 1e-3 as a string; the field type makes it a float.
    rate = config.stages.finetune.optimizer.learning_rate
    assert rate == pytest.approx(1e-3)
    assert isinstance(rate, float)
    assert config.model.weights == "imagenet"


def test_unknown_key_lists_valid_keys(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model:\n  backbnoe: vgg16\n")
    with pytest.raises(ConfigError, match="model.backbnoe") as info:
        config_lib.load_config(str(path))
    assert "backbone" in str(info.value)


def test_unknown_section_is_an_error():
    with pytest.raises(ConfigError, match="Unknown config key 'modle'"):
        config_lib.load_config(None, ["modle.backbone=x"])


def test_set_overrides_are_parsed_as_yaml():
    config = config_lib.load_config(
        None,
        [
            "data.batch_size=8",
            "stages.order=[finetune]",
            "model.levels=[P4, P5]",
            "data.skip_bad=true",
        ],
    )
    assert config.data.batch_size == 8
    assert config.stages.order == ["finetune"]
    assert config.model.levels == ["P4", "P5"]
    assert config.data.skip_bad is True


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.batch_size=eight", "data.batch_size"),
        ("data.batch_size=2.5", "data.batch_size"),
        ("data.skip_bad=maybe", "data.skip_bad"),
        ("model=3", "model"),
        ("stages.order=[rank, fly]", "stages.order"),
        ("data.crop_size=7", "data.crop_size"),
        (
            "stages.rank.optimizer.learning_rate=-1e-3",
            "stages.rank.optimizer.learning_rate",
        ),
        (
            "stages.finetune.optimizer.head_learning_rate=-1",
            "stages.finetune.optimizer.head_learning_rate",
        ),
        ("stages.meta.inner_learning_rate=-0.1", "stages.meta.inner_learning_rate"),
        (
            "stages.finetune.optimizer.learning_rate=0",
            "stages.finetune.optimizer.learning_rate",
        ),
        ("stages.meta.schedule.epochs=0", "stages.meta.schedule.epochs"),
        ("stages.rank.schedule.epochs=-2", "stages.rank.schedule.epochs"),
        ("stages.order=[]", "stages.order"),
        ("model.levels=[P9]", "model.levels"),
        ("model.levels=[]", "model.levels"),
        ("data.dataset=nosuchset", "data.dataset"),
        ("model.scoring.crops=0", "model.scoring.crops"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_lib.load_config(None, [override])


def _learning_rate_keys():
    """Every `*learning_rate*` field of every section, from the schema."""
    config = config_lib.ExperimentConfig()
    return [key for key, *_ in leaf_fields(config) if "learning_rate" in key]


def test_learning_rate_keys_are_found():
    assert "stages.finetune.optimizer.learning_rate" in _learning_rate_keys()
    assert "stages.meta.inner_learning_rate" in _learning_rate_keys()


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "NaN", "1e999"])
@pytest.mark.parametrize("key", _learning_rate_keys())
def test_non_finite_learning_rates_are_rejected_at_load(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        config_lib.load_config(None, [f"{key}={value}"])
    assert "finite" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("levels", ["[P2, P2, P2]", "[P3, P4, P3]"])
def test_repeated_levels_are_rejected(levels):
    with pytest.raises(ConfigError, match=r"model\.levels") as info:
        config_lib.load_config(None, [f"model.levels={levels}"])
    assert "more than once" in str(info.value)


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="key=value"):
        config_lib.load_config(None, ["data.batch_size"])


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        config_lib.load_config(str(path))


def test_non_utf8_config_names_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("model:\n  backbone: r\xe9snet\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml.*not UTF-8"):
        config_lib.load_config(str(path))


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        config_lib.load_config(str(tmp_path / "nope.yaml"))


def test_saved_config_round_trips(tmp_path):
    config = config_lib.load_config(None, ["model.backbone=vgg16", "runtime.seed=3"])
    path = tmp_path / "run" / "config.yaml"
    config_lib.save_config(config, str(path))
    assert yaml.safe_load(path.read_text())["model"]["backbone"] == "vgg16"
    assert config_lib.load_config(str(path)) == config
    # No temporary files are left next to the result.
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]


def test_resolve_path_uses_data_root():
    config = config_lib.load_config(None, ["data.root=/data"])
    assert config.resolve_path("pristine") == "/data/pristine"
    assert config.resolve_path("/abs/x") == "/abs/x"


def test_builtin_quickstart_config_loads():
    config = config_lib.load_config(config_lib.builtin_config_path("quickstart"))
    assert config.model.weights == "none"
