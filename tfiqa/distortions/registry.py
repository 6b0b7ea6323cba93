"""The distortion registry: `Distortion` records, named sets and `apply_distortion`.

Every distortion is a function `fn(image, level, seed) -> image` on a float32
RGB tensor in [0, 1] of shape (H, W, 3), with `level` a Python int in 1..5
(5 = most severe) and `seed` a stateless-RNG seed (int32 tensor of shape (2,)).
Random choices (noise fields, angles, patch positions) depend on the seed
only, never on the level: the level scales a fixed random pattern, so one seed
gives nested, strictly worsening images across levels (common random numbers),
and the same (image, type, level, seed) always gives the same output.

Example:
```python
import tensorflow as tf
from tfiqa.distortions import apply_distortion, distortion_set

image = tf.random.uniform((64, 64, 3))
for name in distortion_set("kadid"):
    out = apply_distortion(name, image, level=3, seed=7)
```
"""

import dataclasses

import tensorflow as tf

from tfiqa.distortion_names import KADID10K_TYPES, LIVE_TYPES
from tfiqa.errors import ConfigError
from tfiqa.registry import Registry

LEVELS = (1, 2, 3, 4, 5)
MEASURES = ("msssim", "psnr")

DISTORTIONS = Registry("distortion")

# Named sets, in the order of their source database.
DISTORTION_SETS = {"kadid": KADID10K_TYPES, "live": LIVE_TYPES}


@dataclasses.dataclass(frozen=True)
class Distortion:
    """One registered distortion type.

    Args:
        name: str. Registry name (snake_case).
        fn: callable `(image, level, seed) -> image` on float32 (H, W, 3) in
            [0, 1]; `level` a Python int in 1..5, `seed` an int32 (2,) tensor.
        python_only: bool. True when `fn` leaves the TF graph through
            `tf.numpy_function` (slow, not serialisable); such types are left
            out of `fast_types`.
        measure: str. Full-reference measure that orders its levels:
            "msssim" or "psnr" (for global intensity changes that MS-SSIM
            barely sees).
        params: tuple. The per-level parameter values, for documentation.
        description: str. One line shown in listings.
    """

    name: str
    fn: object
    python_only: bool = False
    measure: str = "msssim"
    params: tuple = ()
    description: str = ""


def register_distortion(name, params=(), python_only=False, measure="msssim"):
    """Decorator registering `fn(image, level, seed)` as a `Distortion`."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}. Received: {measure}")
    if params and len(params) != len(LEVELS):
        raise ValueError(f"'{name}' needs one parameter per level. Received: {params}")

    def add(fn):
        doc = (fn.__doc__ or "").strip().splitlines()
        DISTORTIONS.register(
            name,
            Distortion(
                name=name,
                fn=fn,
                python_only=python_only,
                measure=measure,
                params=tuple(params),
                description=doc[0] if doc else "",
            ),
        )
        return fn

    return add


def as_seed(seed):
    """Any int, scalar tensor or (2,) tensor -> an int32 (2,) stateless seed."""
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        raise ConfigError(f"A distortion seed must be an integer. Received: {seed!r}")
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    # Stateless ops accept int32/int64; keep values in int32 range.
    return tf.cast(tf.math.floormod(seed, 2**31 - 1), tf.int32)


def sub_seed(seed, index):
    """A new seed derived from `seed` for the `index`-th random draw."""
    return tf.random.experimental.stateless_fold_in(seed, index)


def check_level(level):
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise ConfigError(
            f"A distortion level must be an int in 1..5. Received: level={level!r}"
        )
    return level


def apply_distortion(name, image, level, seed):
    """Applies distortion `name` at `level` (1..5) with `seed`.

    Args:
        name: str. A registered distortion type (see `DISTORTIONS.names()`).
        image: float32 tensor (H, W, 3) in [0, 1] (uint8 is converted).
        level: int in 1..5; higher is more severe.
        seed: int or int tensor of shape () or (2,).

    Returns:
        float32 tensor (H, W, 3) in [0, 1], same shape as `image`.
    """
    distortion = DISTORTIONS.get(name)
    level = check_level(level)
    image = tf.convert_to_tensor(image)
    if image.dtype == tf.uint8:
        image = tf.cast(image, tf.float32) / 255.0
    image = tf.cast(image, tf.float32)
    if image.shape.rank != 3 or (image.shape[-1] not in (None, 3)):
        raise ConfigError(
            f"Distortions take one RGB image (H, W, 3). Received shape {image.shape}"
        )
    out = distortion.fn(image, level, as_seed(seed))
    out = tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)
    return tf.ensure_shape(tf.reshape(out, tf.shape(image)), image.shape)


def distortion_set(name):
    """The ordered list of type names in a named set ("kadid" or "live")."""
    if name not in DISTORTION_SETS:
        raise ConfigError(
            f"Unknown distortion set '{name}'. Valid sets: "
            f"{', '.join(sorted(DISTORTION_SETS))}. Received: {name!r}"
        )
    return list(DISTORTION_SETS[name])


def fast_types(set_name):
    """Types of a set that run as pure TF ops (no `tf.numpy_function`)."""
    return [n for n in distortion_set(set_name) if not DISTORTIONS.get(n).python_only]


# Types built on TF's JPEG codec ops, which have CPU kernels only.
CPU_KERNEL_TYPES = ("jpeg", "live_jpeg")


def cpu_only(name):
    """True when type `name` cannot run on an accelerator (JPEG codec ops or
    `tf.numpy_function`)."""
    return name in CPU_KERNEL_TYPES or DISTORTIONS.get(name).python_only


def resolve_types(set_name="kadid", types=None):
    """The types to use: `types` if given (validated), else the fast types of
    `set_name`. Unknown names raise a ConfigError with a suggestion."""
    if not types:
        return fast_types(set_name)
    names = [types] if isinstance(types, str) else list(types)
    for n in names:
        DISTORTIONS.get(n)
    return names
