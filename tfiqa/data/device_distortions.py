"""Synthetic distortions applied inside the train step, on the accelerator.

With `ranking_dataset(..., device_distortions=True)` the input pipeline only
decodes and crops (and distorts the types that need CPU-only kernels, JPEG
and JPEG2000); every other group arrives as its pristine crop repeated at
each level, with its type and seed in the labels. The function built here
finishes those groups where the train step runs (each replica its own share
of the batch), so a GPU is not held back by CPU distortion throughput. The
ops, inputs and seeds are those of the CPU path: same seed, same images.

Example:
```python
ds = ranking_dataset(paths, types, 224, 4, seed=0, device_distortions=True)
distort = device_distortion_fn(types, 224)
images, labels = distort(*next(iter(ds)))  # as ranking_dataset(...) would give
```
"""

import tensorflow as tf

from tfiqa.data.ranking import check_levels, distort_levels
from tfiqa.distortions import cpu_only, resolve_types
from tfiqa.distortions.ops import to_uint8
from tfiqa.errors import ConfigError

DEVICE_LABELS = ("type_index", "seed")


def device_distortion_fn(
    types, crop_size, levels=(1, 2, 3, 4, 5), include_pristine=True
):
    """`(images, labels) -> (images, labels)` distorting the deferred groups.

    Args: as the `ranking_dataset` that made the batches (`types` resolved
    the same way); `labels` must hold its "type_index" and "seed" entries,
    which the returned labels drop.
    """
    types = resolve_types("kadid", types)
    levels = check_levels(levels)
    skip = tuple(t for t in types if cpu_only(t))
    on_device = tf.constant([t not in skip for t in types])
    per_group = len(levels) + int(include_pristine)
    group_shape = [per_group, int(crop_size), int(crop_size), 3]

    def distort_group(args):
        group, type_index, seed = args
        group = tf.ensure_shape(group, group_shape)

        def distort():
            crop = tf.cast(group[0], tf.float32) / 255.0
            out = to_uint8(distort_levels(crop, type_index, seed, types, levels, skip))
            return tf.concat([group[:1], out], axis=0) if include_pristine else out

        return tf.cond(tf.gather(on_device, type_index), distort, lambda: group)

    @tf.function  # `lazy_switch_case` needs a graph, also when called eagerly
    def apply(images, labels):
        groups = tf.reshape(images, [-1, *group_shape])
        groups = tf.map_fn(
            distort_group,
            (groups, labels["type_index"], labels["seed"]),
            fn_output_signature=tf.TensorSpec(group_shape, tf.uint8),
        )
        rest = {k: v for k, v in labels.items() if k not in DEVICE_LABELS}
        return tf.reshape(groups, [-1, *group_shape[1:]]), rest

    return apply


def device_step(compute_terms, types, crop_size, groups_per_batch, replicas):
    """(finish, compute_terms) for ranking with device-side distortions.

    `finish(images, labels)` distorts a deferred batch's images eagerly (for
    BatchNorm statistics); the returned `compute_terms(batch, training)`
    distorts inside the train step, then calls the given one.
    """
    if groups_per_batch % replicas:
        raise ConfigError(
            "stages.rank.device_distortions needs stages.rank.groups_per_batch to be a "
            f"multiple of the {replicas} replicas (each replica distorts whole "
            f"groups). Received: groups_per_batch={groups_per_batch}"
        )
    distort = device_distortion_fn(types, crop_size)

    def step_terms(batch, training):
        return compute_terms(distort(*batch), training)

    return (lambda images, labels: distort(images, labels)[0]), step_terms
