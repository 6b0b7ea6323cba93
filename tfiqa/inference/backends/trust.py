"""What tfiqa runs from a model file: SavedModel op allowlist, safe `.keras`.

A SavedModel is a program: its graph can write and read files (`WriteFile`,
`ReadFile`, `MatchingFiles`), call Python (`PyFunc`, `EagerPyFunc`) or print
to a file (`PrintV2`). Before one is loaded, `check_saved_model` reads its
`saved_model.pb` (never executed) and refuses any op outside `SCORING_OPS`,
the pure tensor ops (and image decoders) that a scoring graph needs, in every
node of its graph and every function of its library; the variable save and
restore functions may also use `SAVER_OPS`. The allowlist holds the ops of
the SavedModels `tfiqa export` writes for every registered backbone
(`tests/export/test_trust.py` checks it), plus pure math ops that other
networks commonly need.

A `.keras` file is loaded with Keras's `safe_mode` (no Python lambdas);
`check_keras_archive` also refuses `Lambda` layers and objects from Python
modules outside Keras and tfiqa before Keras sees the file.

Example:
```python
check_saved_model("export/out/tfiqa/1")   # raises UnsafeModelError
check_keras_archive("runs/exp1/model.keras")
```
"""

import json
import os
import zipfile

from tfiqa.errors import DataError, UnsafeModelError


def _op_names(text):
    """A frozenset of the op names in `text`, separated by white space."""
    return frozenset(text.split())


# Pure tensor ops: they compute on their inputs and the model's variables and
# touch nothing else (no files, processes, network or Python).
SCORING_OPS = _op_names(
    # Graph structure, variables (read only), control flow.
    "Const Identity IdentityN NoOp Placeholder PlaceholderWithDefault "
    "VarHandleOp ReadVariableOp StatefulPartitionedCall PartitionedCall "
    "If StatelessIf While StatelessWhile Case StatelessCase Assert "
    "CheckNumerics EnsureShape StopGradient "
    "TensorListFromTensor TensorListGetItem TensorListReserve TensorListSetItem "
    "TensorListStack TensorListLength TensorListElementShape "
    # Shapes and layout.
    "Shape ShapeN Size Rank Reshape Squeeze ExpandDims Pack Unpack ConcatV2 "
    "Split SplitV Slice StridedSlice Transpose Tile BroadcastTo Fill Range "
    "LinSpace ReverseV2 Pad PadV2 MirrorPad GatherV2 GatherNd Where Select "
    "SelectV2 OnesLike ZerosLike OneHot DepthToSpace SpaceToDepth Cast Bitcast "
    # Arithmetic and comparisons.
    "Add AddV2 AddN Sub Mul RealDiv Div DivNoNan FloorDiv FloorMod Mod Neg Abs "
    "Sign Square Sqrt Rsqrt Reciprocal Pow Exp Log Log1p Erf Floor Ceil Round "
    "Maximum Minimum ClipByValue SquaredDifference Sin Cos "
    "Equal NotEqual Less LessEqual Greater GreaterEqual IsFinite IsNan IsInf "
    "LogicalAnd LogicalOr LogicalNot BitwiseAnd BitwiseOr LeftShift RightShift "
    "Sum Mean Max Min Prod All Any ArgMax ArgMin Cumsum "
    # Neural network layers.
    "MatMul BatchMatMulV2 BatchMatMulV3 Einsum BiasAdd Conv2D "
    "DepthwiseConv2dNative Conv2DBackpropInput MaxPool MaxPoolV2 AvgPool "
    "FusedBatchNormV3 Relu Relu6 LeakyRelu Elu Selu Sigmoid Tanh Softplus "
    "Softsign Softmax LogSoftmax "
    # Images: decoding bytes held in memory, resizing.
    "DecodeImage DecodeJpeg DecodePng DecodeBmp DecodeGif ExtractJpegShape "
    "DecodeRaw Substr StringJoin ResizeBilinear ResizeNearestNeighbor "
    "ResizeBicubic ResizeArea ScaleAndTranslate"
)
# Only in the functions that save or restore the variables (`saver_def`).
SAVER_OPS = _op_names(
    "SaveV2 RestoreV2 MergeV2Checkpoints ShardedFilename StaticRegexFullMatch "
    "DisableCopyOnRead AssignVariableOp"
)
# Python modules that a safe `.keras` file may name.
KERAS_MODULES = ("keras", "keras_hub", "tfiqa", "builtins")
# Keras's own refusals in safe mode (lambdas, non-modelling APIs).
KERAS_UNSAFE_MARKERS = ("safe_mode", "arbitrary code", "for security")


def _called_functions(node, library):
    """Names of the library functions a NodeDef calls: through its attributes
    (`f`, branches, loop bodies) or as its op (a direct call)."""
    names = [node.op] if node.op in library else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func)
    return names


def _closure(roots, library):
    """`roots` and every library function they call, transitively."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        for node in library[name].node_def:
            todo.extend(_called_functions(node, library))
    return seen


def disallowed_ops(meta_graph):
    """{op: where} for the ops of a MetaGraphDef outside the allowlists.

    Only the two nodes that `saver_def` names (the save and restore calls)
    and the functions that nothing else reaches may use `SAVER_OPS`; every
    other node and function, whether a signature calls it or not (resource
    initialisers run at load, attributes can be called), is checked against
    `SCORING_OPS` alone.
    """
    graph = meta_graph.graph_def
    library = {f.signature.name: f for f in graph.library.function}
    saver = meta_graph.saver_def
    roots = {
        name.lstrip("^").split(":")[0]
        for name in (saver.save_tensor_name, saver.restore_op_name)
        if name
    }
    saver_calls, other_calls = [], []
    for node in graph.node:
        target = saver_calls if node.name in roots else other_calls
        target.extend(_called_functions(node, library))
    saver_reach = _closure(saver_calls, library)
    strict = _closure(other_calls + sorted(set(library) - saver_reach), library)
    places = [(node.op, "the graph", node.name in roots) for node in graph.node]
    places += [
        (node.op, f"function {name}", name not in strict)
        for name, function in library.items()
        for node in function.node_def
    ]
    bad = {}
    for op, where, saver_only in places:
        if op in SCORING_OPS or op in library or (saver_only and op in SAVER_OPS):
            continue
        bad.setdefault(op, where)
    return bad


def check_saved_model(directory):
    """Refuses a SavedModel whose graph uses an op outside the allowlist.

    Args:
        directory: str. The folder holding `saved_model.pb`.

    Raises:
        UnsafeModelError: an op outside `SCORING_OPS` (named in the message).
        DataError: `saved_model.pb` does not parse.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
            saved.ParseFromString(f.read())
    except (DecodeError, RuntimeWarning, ValueError) as e:
        raise DataError(
            f"Corrupt SavedModel {directory}: saved_model.pb does not parse ({e})"
        ) from None
    bad = {}
    for meta_graph in saved.meta_graphs:
        for op, where in disallowed_ops(meta_graph).items():
            bad.setdefault(op, where)
    if bad:
        ops = sorted(bad)
        named = ", ".join(repr(op) for op in ops[:5])
        raise UnsafeModelError(
            f"Refused SavedModel {directory}: its graph runs op {named} (in "
            f"{bad[ops[0]]}), which a scoring model does not need (file, Python "
            "and process ops are refused). Pass --trust-model (Python: "
            "trust_model=True) only if you trust where it came from. "
            f"Received: {directory}"
        )


def _unsafe_objects(config):
    """Reasons a `.keras` config would run code: Lambda layers, foreign modules."""
    todo, found = [config], []
    while todo:
        item = todo.pop()
        if isinstance(item, list):
            todo.extend(item)
        if not isinstance(item, dict):
            continue
        name = item.get("class_name")
        if name in ("Lambda", "__lambda__"):
            found.append("a Lambda layer (Python code stored in the file)")
        module = item.get("module")
        if isinstance(module, str) and module.split(".")[0] not in KERAS_MODULES:
            found.append(f"{name!r} from Python module {module!r}")
        todo.extend(item.values())
    return found


def check_keras_archive(path):
    """Refuses a `.keras` file whose config names code outside Keras and tfiqa.

    Raises:
        UnsafeModelError: a Lambda layer or an object from another module.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return  # not readable here: Keras reports it as a corrupt file
    found = _unsafe_objects(config)
    if found:
        raise unsafe_keras_error(path, found[0])


def unsafe_keras_error(path, reason):
    return UnsafeModelError(
        f"Refused Keras model {path} as unsafe: it holds {reason}; tfiqa loads "
        ".keras files in Keras's safe mode, which never runs code from a "
        f"model file. Received: {path}"
    )


def is_unsafe_keras_error(error):
    """True for Keras's safe-mode refusals (a Python lambda in the file), also
    when Keras wraps one in another error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if any(marker in str(error) for marker in KERAS_UNSAFE_MARKERS):
            return True
        error = error.__cause__ or error.__context__
    return False
