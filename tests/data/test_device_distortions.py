import numpy as np
import pytest
import tensorflow as tf

from tfiqa.data.device_distortions import device_distortion_fn
from tfiqa.data.ranking import ranking_dataset

# Device types and one that needs a CPU-only kernel (stays in tf.data).
TYPES = ["white_noise", "gaussian_blur", "pixelate", "jpeg"]


def _paths(folder):
    return sorted(str(p) for p in folder.iterdir())


def batches(paths, steps=4, **options):
    ds = ranking_dataset(paths, TYPES, 24, groups_per_batch=3, seed=5, **options)
    return list(ds.take(steps))


@pytest.mark.parametrize("include_pristine", [True, False])
def test_device_path_gives_the_cpu_path_images(image_folder, include_pristine):
    paths = _paths(image_folder)
    options = {"include_pristine": include_pristine, "levels": (1, 3, 5)}
    cpu = batches(paths, **options)
    deferred = batches(paths, device_distortions=True, **options)
    distort = tf.function(device_distortion_fn(TYPES, 24, (1, 3, 5), include_pristine))
    per_group = 3 + include_pristine
    seen = set()
    for (want, want_labels), (images, labels) in zip(cpu, deferred, strict=True):
        types = labels["type_index"].numpy()
        groups = images.numpy().reshape(3, per_group, 24, 24, 3)
        for group, t in zip(groups, types, strict=True):
            # The pipeline left device types undistorted: one crop repeated.
            undistorted = all(np.array_equal(g, group[0]) for g in group)
            assert undistorted == (TYPES[t] != "jpeg"), TYPES[t]
            seen.add(TYPES[t] == "jpeg")
        out, out_labels = distort(images, labels)
        out = out.numpy().reshape(groups.shape).astype(int)
        want = want.numpy().reshape(groups.shape).astype(int)
        for group, t, w in zip(out, types, want, strict=True):
            # Same ops, inputs and seeds; another kernel of an op (oneDNN in
            # a function, Eigen in tf.data, or a GPU's) may round a float
            # differently, moving a pixel by one intensity level at most.
            diff = np.abs(group - w)
            assert diff.max() <= 1 and diff.mean() < 0.05, TYPES[t]
            if include_pristine:
                np.testing.assert_array_equal(group[0], w[0])
        assert sorted(out_labels) == ["group", "level"]
        for key in ("group", "level"):
            np.testing.assert_array_equal(out_labels[key], want_labels[key])
    assert seen == {True, False}, "the batches should mix CPU and device types"


def test_device_step_distorts_before_the_loss(image_folder):
    from tfiqa.data.device_distortions import device_step
    from tfiqa.errors import ConfigError

    paths = _paths(image_folder)
    want = batches(paths, steps=1)[0][0].numpy()
    images, labels = batches(paths, steps=1, device_distortions=True)[0]
    seen = []

    def compute_terms(batch, training):
        seen.append((batch[0].numpy(), sorted(batch[1]), training))
        return {}

    finish, step_terms = device_step(compute_terms, TYPES, 24, 3, replicas=1)
    step_terms((images, labels), True)
    assert seen[0][1:] == (["group", "level"], True)
    for out in (seen[0][0], finish(images, labels).numpy()):
        assert np.abs(out.astype(int) - want).max() <= 1
    with pytest.raises(ConfigError, match="groups_per_batch=3"):
        device_step(compute_terms, TYPES, 24, 3, replicas=2)
