"""A model file runs nothing that scoring does not need, unless trusted."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import make_image
from PIL import Image

from tfiqa.cli import cli
from tfiqa.errors import UnsafeModelError
from tfiqa.export import export_model
from tfiqa.inference import load
from tfiqa.inference.backends.keras import load_keras_model
from tfiqa.inference.backends.trust import check_saved_model
from tfiqa.models import IQAModel
from tfiqa.models.backbones import BACKBONES
from tfiqa.scoring_policy import ScoringPolicy

IMAGES = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")


def save_module(folder, score_fn, **attributes):
    """A SavedModel whose `score_uint8` signature is `score_fn(images)`."""
    module = tf.Module()
    for name, value in attributes.items():
        setattr(module, name, value)
    signature = tf.function(score_fn, input_signature=[IMAGES])
    tf.saved_model.save(module, str(folder), signatures={"score_uint8": signature})
    return str(folder)


def mean_score(images):
    return {"score": tf.reduce_mean(tf.cast(images, tf.float32), [1, 2, 3]) / 255.0}


@pytest.fixture
def writer(tmp_path):
    """A SavedModel whose scoring writes `pwned.txt`; returns (model, file)."""
    target = tmp_path / "pwned.txt"

    def score(images):
        tf.io.write_file(str(target), "written by a model")
        return mean_score(images)

    return save_module(tmp_path / "writer", score), target


def test_saved_model_that_writes_a_file_is_refused_unless_trusted(writer):
    path, target = writer
    with pytest.raises(UnsafeModelError, match="'WriteFile'") as info:
        load(path)
    assert "\n" not in str(info.value) and "--trust-model" in str(info.value)
    assert not target.exists()
    scores = load(path, trust_model=True).score(np.stack([make_image((40, 40))]))
    assert scores.shape == (1,) and target.exists()


def test_cli_refuses_it_in_one_line_and_runs_it_with_trust_model(writer, tmp_path):
    path, target = writer
    image = tmp_path / "x.png"
    Image.fromarray(make_image((40, 40))).save(image)
    result = CliRunner().invoke(cli, ["predict", "--model", path, str(image)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "'WriteFile'" in result.output
    assert not target.exists()
    trusted = ["predict", "--model", path, "--trust-model", str(image)]
    result = CliRunner().invoke(cli, trusted)
    assert result.exit_code == 0, result.output
    assert target.exists()


def in_a_branch(images):
    # Hidden one function deeper, in a tf.cond branch.
    def write():
        tf.io.write_file("/nonexistent/x", "x")
        return tf.constant(1.0)

    scale = tf.cond(tf.shape(images)[0] > 0, write, lambda: tf.constant(1.0))
    return {"score": mean_score(images)["score"] * scale}


def with_python(images):
    score = tf.py_function(lambda x: x, [mean_score(images)["score"]], tf.float32)
    return {"score": score}


def reads_files(images):
    tf.io.matching_files("/etc/*")
    return mean_score(images)


def restores_in_scoring(images):
    (value,) = tf.raw_ops.RestoreV2(
        prefix="/tmp/x", tensor_names=["v"], shape_and_slices=[""], dtypes=[tf.float32]
    )
    return {"score": mean_score(images)["score"] + value}


def prints_to_a_file(images):
    tf.print("x", output_stream="file:///tmp/tfiqa-print.txt")
    return mean_score(images)


@pytest.mark.parametrize(
    "score_fn, op",
    [
        (in_a_branch, "WriteFile"),
        (with_python, "EagerPyFunc"),
        (reads_files, "MatchingFiles"),
        (restores_in_scoring, "RestoreV2"),
        (prints_to_a_file, "PrintV2"),
    ],
)
def test_side_effect_ops_anywhere_in_the_graph_are_named(tmp_path, score_fn, op):
    path = save_module(tmp_path / "m", score_fn)
    with pytest.raises(UnsafeModelError, match=f"'{op}'"):
        check_saved_model(path)


def test_a_function_outside_the_signatures_is_checked_too(tmp_path):
    # Not called by `score_uint8`, but loadable and callable as `model.leak`.
    leak = tf.function(lambda: tf.io.read_file("/etc/hostname"), input_signature=[])
    leak.get_concrete_function()
    path = save_module(tmp_path / "m", mean_score, leak=leak)
    with pytest.raises(UnsafeModelError, match="'ReadFile'"):
        check_saved_model(path)


def meta_graph(serving_ops, restore_input="saver_filename"):
    """A MetaGraphDef: a serving call and a restore call (named by its
    saver_def), each to its own function holding the given ops."""
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.saver_def.restore_op_name = "restore"
    for name, ops in (("serve_fn", serving_ops), ("restore_fn", ["RestoreV2"])):
        function = meta.graph_def.library.function.add()
        function.signature.name = name
        for i, op in enumerate(ops):
            function.node_def.add(name=f"n{i}", op=op)
    meta.graph_def.node.add(name="saver_filename", op="Placeholder")
    for name, fn, inputs in (
        ("serve", "serve_fn", []),
        ("restore", "restore_fn", [restore_input]),
    ):
        node = meta.graph_def.node.add(name=name, op="StatefulPartitionedCall")
        node.input.extend(inputs)
        node.attr["f"].func.name = fn
    return meta


def test_save_and_restore_ops_are_allowed_only_in_the_saver_functions():
    from tfiqa.inference.backends.trust import disallowed_ops

    assert disallowed_ops(meta_graph(["Conv2D"])) == {}
    assert set(disallowed_ops(meta_graph(["SaveV2"]))) == {"SaveV2"}
    # Making the scoring call an input of the restore op changes nothing.
    hidden = meta_graph(["MergeV2Checkpoints"], restore_input="^serve")
    assert set(disallowed_ops(hidden)) == {"MergeV2Checkpoints"}


def test_plain_scoring_module_with_variables_loads(tmp_path):
    # Its variable restore function uses RestoreV2: allowed there only.
    module_weight = tf.Variable(2.0)

    def score(images):
        return {"score": mean_score(images)["score"] * module_weight}

    path = save_module(tmp_path / "m", score, weight=module_weight)
    check_saved_model(path)
    scores = load(path).score(np.stack([make_image((40, 40))]))
    assert scores.shape == (1,)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", BACKBONES.names())
def test_every_backbone_exports_a_saved_model_that_passes(tmp_path, backbone):
    """The allowlist covers what `tfiqa export` writes, for every backbone,
    fixed and dynamic input, every pooling, head and scoring-policy option."""
    settings = [
        {"input_size": None, "model": {}, "policy": {}},
        {
            "input_size": 0,
            "model": {
                "pooling": ("avg", "max", "std"),
                "head_activation": "prelu",
                "head_input_norm": True,
                "output_activation": "linear",
            },
            "policy": {"small_images": "whole", "resize": 48},
        },
    ]
    for i, setting in enumerate(settings):
        model = IQAModel(
            backbone=backbone,
            weights="none",
            levels=("P5",),
            head_units=(4,),
            scoring_policy=ScoringPolicy(crop_size=32, crops=2, **setting["policy"]),
            **setting["model"],
        )
        manifest = export_model(
            model,
            str(tmp_path / str(i)),
            formats=["saved_model"],
            input_size=setting["input_size"],
        )
        check_saved_model(manifest["saved_model"])


def double(x):
    return x * 2


def lambda_model(path, function):
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(function)(inputs)).save(path)
    return path


def with_os_system(path):
    """A `.keras` whose Lambda names `os.system` as its function."""
    lambda_model(path, double)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Lambda":
            layer["config"]["function"] = {
                "module": "os",
                "class_name": "function",
                "config": "system",
                "registered_name": "system",
            }
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda p: lambda_model(p, lambda x: x * 2),
        lambda p: lambda_model(p, double),
        with_os_system,
    ],
    ids=["python_lambda", "named_function", "os_system"],
)
def test_keras_file_with_code_is_refused_as_unsafe_not_corrupt(tmp_path, make):
    path = make(str(tmp_path / "m.keras"))
    with pytest.raises(UnsafeModelError, match="as unsafe") as info:
        load_keras_model(path)
    assert "Corrupt" not in str(info.value) and "\n" not in str(info.value)
    result = CliRunner().invoke(cli, ["predict", "--model", path, path])
    assert result.exit_code == 2 and "as unsafe" in result.output, result.output
