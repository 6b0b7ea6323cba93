"""Hostile configs: the first real mistake is reported, in one line naming
the key; sizes and counts are bounded; no value makes loading crash."""

import math

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfiqa import config as config_lib
from tfiqa.config_limits import RULES, ListOf, Number, Optional, leaf_fields
from tfiqa.errors import ConfigError


def leaf_keys():
    config = config_lib.ExperimentConfig()
    return [(key, field) for key, field, _ in leaf_fields(config)]


def test_every_key_has_a_rule():
    assert sorted(key for key, _ in leaf_keys()) == sorted(RULES)


def test_every_number_is_bounded():
    for key, field in leaf_keys():
        rule = RULES[key]
        while isinstance(rule, (ListOf, Optional)):
            rule = rule.item if isinstance(rule, ListOf) else rule.rule
        if field.type in (int, float, int | None):
            assert isinstance(rule, Number), key
        if isinstance(rule, Number):
            assert math.isfinite(rule.high) and rule.high <= 2**31, key


# (file content, what the message must say); each of these used to report
# "data.crop_size 224 is larger than the generated images" instead.
MALFORMED = [
    ("model:\n  backbone: nosuchnet\n", "model.backbone: Unknown backbone 'nosuchnet'"),
    ("data:\n  val_ratio: 1.5\n", "data.val_ratio must be >= 0 and < 1"),
    ("", "config file has no settings"),
    ("# a comment\n# another\n", "config file has no settings"),
    ("data:\nmodel:\n  backbone: resnet18\n", "data must be a mapping"),
    ("finetune: null\n", "finetune must be a mapping"),
]


@pytest.mark.parametrize("content, message", MALFORMED)
def test_train_reports_the_first_real_mistake(tmp_path, content, message):
    from tfiqa.cli import cli

    path = tmp_path / "exp.yaml"
    path.write_text(content)
    result = CliRunner().invoke(
        cli, ["train", "--config", str(path), "--workdir", str(tmp_path / "run")]
    )
    assert result.exit_code == 2, result.output
    error = result.output.strip().splitlines()[-1]
    assert message in error and "crop_size" not in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override",
    [
        "data.pristine_size=1000000",
        "data.pristine_count=100000000",
        "data.crop_size=100000",
        "data.batch_size=1000000",
        "model.scoring.crops=200000",
        "data.num_splits=1000000",
        "model.scoring.resize=1000000",
        "model.head_units=[64, 10000000]",
        "stages.rank.schedule.steps_per_epoch=1e12",
        "stages.rank.groups_per_batch=1000000",
        "stages.meta.support_size=1000000",
        "stages.meta.inner_steps=100000",
        "stages.finetune.schedule.epochs=1e9",
        "stages.finetune.cache_views=100000",
        "runtime.precise_bn_batches=1e9",
        "export.input_size=100000",
        "export.calibration_images=1e9",
    ],
)
def test_sizes_and_counts_have_upper_bounds(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')} must be"):
        config_lib.load_config(None, [override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.test_ratio=0.9", "data.val_ratio + data.test_ratio"),
        ("export.input_size=16", "export.input_size must be 0 or >= 32"),
        ("data.batch_size=1e400", "data.batch_size must be an integer"),
        (
            "stages.finetune.rank_weight=.nan",
            "stages.finetune.rank_weight must be a finite",
        ),
        ("runtime.mixed_precision=[1]", "runtime.mixed_precision must be true"),
        ("data=", "data must be a mapping"),
        ("data.crop_size=" + "1" * 400, "data.crop_size must be >= 32 and <= 4096"),
        ("export.input_size=-" + "1" * 400, "export.input_size must be 0 or >= 32"),
        ("data.crop_size=" + "1" * 5000, "--set data.crop_size: value is not valid"),
    ],
)
def test_values_valid_alone_but_not_together_or_of_the_wrong_kind(override, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        config_lib.load_config(None, [override])


def test_defaults_and_quickstart_pass_the_rules():
    config_lib.load_config(config_lib.builtin_config_path("quickstart"))
    config_lib.ExperimentConfig().validate()


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _as_yaml(value):
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf)
    return text.removesuffix("\n").removesuffix("\n...")


def _loads_or_names_the_key(key, text):
    try:
        config_lib.load_config(None, [f"{key}={text}"])
    except ConfigError as e:
        message = str(e)
        assert key in message or "--set" in message, message
        assert "\n" not in message, message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(RULES)), value=VALUES)
def test_any_value_of_any_key_loads_or_is_a_config_error(key, value):
    _loads_or_names_the_key(key, _as_yaml(value))


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(sorted(RULES)), text=st.text(max_size=20))
def test_any_text_after_set_loads_or_is_a_config_error(key, text):
    _loads_or_names_the_key(key, text)
