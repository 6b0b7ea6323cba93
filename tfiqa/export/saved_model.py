"""SavedModel export in the TF Serving layout.

Layout (TF Serving watches `<base>/<name>/` and serves the highest version):
```
DIR/models.config
DIR/<name>/<version>/saved_model.pb, variables/, assets.extra/tfiqa.json
```
Signatures:
- `serving_default`: `image_bytes` tf.string (B,) of encoded JPEG/PNG/BMP/GIF
  files (1-bit BMP included), decoded in the graph (the REST API's
  `{"b64": ...}` payload) and scored under the model's scoring policy, so
  it returns what `tfiqa predict` does. Bytes that do not decode, or a
  header declaring more than `MAX_PIXELS` pixels or an aspect ratio above
  `MAX_ASPECT_RATIO` (`tfiqa.data.image_io`), fail that request with
  INVALID_ARGUMENT before decoding; the server keeps running. An empty
  batch returns an empty result.
- `score_uint8`: `images` uint8 (B, H, W, 3) RGB: one crop per image,
  H = W = the model's crop size (any size for a dynamic export); clients
  average crops per the sidecar's `scoring` policy (`tfiqa.load` does).
  A tensor of another shape (no batch axis, other channels, another crop
  size) fails with INVALID_ARGUMENT naming the shape expected; an empty
  batch returns an empty result.
Both return `{"score": float32 (B,)}`, higher is better.

Reading one back: `tfiqa.inference.backends.saved_model`.
"""

import os
import shutil

from tfiqa.export.work_dirs import make_work_dir, remove_stale_work_dirs
from tfiqa.files import write_json_atomic, write_text_atomic
from tfiqa.inference.backends.saved_model import (
    SIDECAR_PATH,
    SIGNATURE_BYTES,
    SIGNATURE_UINT8,
)
from tfiqa.scoring_policy import ScoringPolicy

# Hidden, non-numeric work folders beside the version folders (TF Serving
# ignores them): the version being written, and the one it replaces.
WORK_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"

_MODELS_CONFIG = """model_config_list {{
  config {{
    name: "{name}"
    base_path: "{base_path}"
    model_platform: "tensorflow"
  }}
}}
"""


def save_signatures(model, directory, signatures):
    """Writes a SavedModel holding `model`'s variables and `signatures`.

    A plain `tf.Module` tracking the variables is enough (the graph is in
    the signatures) and saves an order of magnitude faster than tracking the
    Keras model, which traces every layer. It tracks the backing
    `tf.Variable`s: the TFLite converter only freezes those into constants.

    Args:
        model: keras.Model whose variables the signatures use.
        directory: str. Where to write.
        signatures: dict name -> `tf.function` with an input signature.
    """
    import keras
    import tensorflow as tf

    module = tf.Module()
    module.model_variables = [
        v.value if isinstance(v, keras.Variable) else v for v in model.variables
    ]
    concrete = {name: f.get_concrete_function() for name, f in signatures.items()}
    tf.saved_model.save(module, directory, signatures=concrete)
    return directory


def serving_signatures(model, input_size, policy=None):
    """The `serving_default` (bytes) and `score_uint8` tf.functions.

    Args:
        model: keras.Model taking (B, H, W, 3) pixels in [0, 255] and
            returning scores (B,) (or (B, 1)).
        input_size: int or None. Fixed square input side of `score_uint8`
            (one crop); None or 0 takes any size.
        policy: `ScoringPolicy` or None. The scoring policy
            `serving_default` applies to each decoded image (default: the
            model's own).
    """
    import tensorflow as tf

    from tfiqa.export.decode import decode_image_bytes
    from tfiqa.models.scoring import score_images, tf_policy_score

    size = input_size or None
    policy = policy or ScoringPolicy.of(model)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        # Sizes differ between images, so each one is scored on its own, the
        # way `tfiqa predict` scores it.
        scores = tf.map_fn(
            lambda b: tf_policy_score(model, decode_image_bytes(b), policy),
            image_bytes,
            fn_output_signature=tf.TensorSpec([], tf.float32),
        )
        return {"score": scores}

    @tf.function(
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")]
    )
    def serve_uint8(images):
        # A loaded signature binds any tensor to its spec without checking
        # the shape; a wrong rank reached the backbone's kernels, which can
        # abort the process. Checked here, it is an InvalidArgumentError.
        with tf.control_dependencies(_uint8_checks(images, size)):
            images = tf.identity(images)
        scores = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: score_images(model, images),
            lambda: tf.zeros([0], tf.float32),
        )
        return {"score": scores}

    return {SIGNATURE_BYTES: serve_bytes, SIGNATURE_UINT8: serve_uint8}


def _uint8_checks(images, size):
    """Assert ops: `images` is (B, H, W, 3), with H = W = `size` if fixed."""
    import tensorflow as tf

    expected = f"(batch, {size}, {size}, 3)" if size else "(batch, H, W, 3)"
    message = f"score_uint8 takes uint8 images of shape {expected}. Received: shape"
    # Not tf.rank / assert_rank: the spec's static rank folds them into
    # constants, and a caller's tensor of another rank passes. The runtime
    # shape, padded with zeros, has a 3 at index 3 and a 0 at index 4 only
    # when its rank is 4.
    shape = tf.shape(images)
    padded = tf.concat([shape, tf.zeros([5], tf.int32)], 0)
    ok = tf.equal(padded[3], 3) & tf.equal(padded[4], 0)
    if size:
        ok = ok & tf.equal(padded[1], size) & tf.equal(padded[2], size)
    return [tf.debugging.Assert(ok, [message, shape])]


def make_readable(path):
    """Gives files 0644 and folders 0755: temporary files are created 0600,
    and a model server usually runs as another user."""
    if os.path.isfile(path):
        os.chmod(path, 0o644)
        return
    os.chmod(path, 0o755)
    for root, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


def _replace_dir(tmp_dir, target):
    """Moves a finished directory into place; TF Serving never sees half.

    The previous version is set aside under its own name in an `.old-`
    work folder, so that an export killed between the two moves leaves it
    for the next export to move back.
    """
    old = None
    if os.path.exists(target):
        old = make_work_dir(os.path.dirname(target), OLD_PREFIX)
        os.replace(target, os.path.join(old, os.path.basename(target)))
    os.replace(tmp_dir, target)
    if old:
        shutil.rmtree(old)


def export_saved_model(model, base_dir, version, input_size, sidecar=None):
    """Writes `base_dir/<version>/` (a SavedModel) atomically.

    Args:
        model: keras.Model, see `serving_signatures`.
        base_dir: str. The model's base path, `DIR/<name>`.
        version: int. TF Serving version number (a positive integer).
        input_size: int or None. See `serving_signatures`.
        sidecar: dict or None. Written to `assets.extra/tfiqa.json`; the
            serving graph applies the scoring policy it records (default:
            the model's own, then recorded there).

    Returns:
        str, the version directory.
    """
    os.makedirs(base_dir, exist_ok=True)
    target = os.path.join(base_dir, str(int(version)))
    for prefix in (WORK_PREFIX, OLD_PREFIX):
        remove_stale_work_dirs(base_dir, prefix)
    # A hidden, non-numeric name: TF Serving ignores it while it is written.
    tmp_dir = make_work_dir(base_dir, WORK_PREFIX)
    try:
        record = (sidecar or {}).get("scoring")
        policy = ScoringPolicy.from_dict(record) if record else ScoringPolicy.of(model)
        save_signatures(model, tmp_dir, serving_signatures(model, input_size, policy))
        if sidecar is not None:
            # Readers score as the sidecar says: it names the graph's policy.
            sidecar = {**sidecar, "scoring": policy.to_dict()}
            write_json_atomic(os.path.join(tmp_dir, SIDECAR_PATH), sidecar)
        make_readable(tmp_dir)
        _replace_dir(tmp_dir, target)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir)
    return target


def write_models_config(path, name, base_path):
    """Writes a TF Serving `--model_config_file` serving one model."""
    write_text_atomic(path, _MODELS_CONFIG.format(name=name, base_path=base_path))
    make_readable(path)
