"""What the training loop writes besides checkpoints: the per-epoch history
kept next to them (so a resumed stage reports every epoch) and TensorBoard
scalars."""

import json
import os

import numpy as np
import tensorflow as tf

from tfiqa.files import write_json_atomic

HISTORY_FILE = "history.json"


def _scalar_metadata():
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    return metadata


def write_scalar(name, value, step):
    """`tf.summary.scalar` without needing the tensorboard package installed.

    Writes the same event TensorBoard's scalar plugin reads; call it under
    `writer.as_default()`.
    """
    tf.summary.write(
        name, tf.constant(value, tf.float32), step=step, metadata=_scalar_metadata()
    )


def read_history(checkpoint_dir, epochs):
    """The logs of the first `epochs` epochs, as saved with checkpoints."""
    if not checkpoint_dir:
        return []
    try:
        with open(os.path.join(checkpoint_dir, HISTORY_FILE)) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return []
    return saved[:epochs] if isinstance(saved, list) else []


def write_history(checkpoint_dir, history):
    if not checkpoint_dir:
        return
    plain = [
        {k: v for k, v in logs.items() if isinstance(v, (int, float, str))}
        for logs in history
    ]
    write_json_atomic(os.path.join(checkpoint_dir, HISTORY_FILE), plain)


def write_epoch_summaries(writer, stage, epoch, logs):
    if writer is None:
        return
    with writer.as_default(step=epoch + 1):
        for name, value in logs.items():
            if isinstance(value, float) and np.isfinite(value):
                write_scalar(f"{stage}/epoch_{name}", value, None)
