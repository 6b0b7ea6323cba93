"""The multi-level quality head: pool several feature maps, concat, MLP, score.

Early backbone stages see local degradations (noise, blocking, ringing) that
the last stage has abstracted away, so the head pools features from several
depths (MultiGAP-NRIQA, arXiv 2011.05139). A single-level head is the same
layer with `levels=("P5",)`.
"""

import keras

from tfiqa.errors import ConfigError

POOLINGS = ("avg", "max", "std")
ACTIVATIONS = ("relu", "prelu")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear")


@keras.saving.register_keras_serializable(package="tfiqa")
class GlobalPooling(keras.layers.Layer):
    """Global pooling of a (batch, h, w, c) map to (batch, c * len(pooling)).

    Args:
        pooling: tuple of str. Any of "avg", "max", "std" (spatial standard
            deviation, a texture/contrast statistic), concatenated in order.
    """

    def __init__(self, pooling=("avg",), **kwargs):
        super().__init__(**kwargs)
        pooling = tuple(pooling)
        bad = [p for p in pooling if p not in POOLINGS]
        if not pooling or bad:
            raise ConfigError(
                f"model.pooling must be a non-empty list of {POOLINGS}. "
                f"Received: pooling={list(pooling)}"
            )
        self.pooling = pooling

    def call(self, features):
        features = keras.ops.cast(features, "float32")
        pooled = []
        mean = keras.ops.mean(features, axis=(1, 2))  # (batch, c)
        for kind in self.pooling:
            if kind == "avg":
                pooled.append(mean)
            elif kind == "max":
                pooled.append(keras.ops.max(features, axis=(1, 2)))
            else:
                # Two passes: E[x^2] - E[x]^2 cancels in float32 when the
                # mean is large against the spread (and under int8).
                centred = features - mean[:, None, None, :]
                variance = keras.ops.mean(keras.ops.square(centred), axis=(1, 2))
                # The epsilon keeps the gradient of sqrt finite on flat maps.
                pooled.append(keras.ops.sqrt(variance + 1e-6))
        return pooled[0] if len(pooled) == 1 else keras.ops.concatenate(pooled, -1)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (
            input_shape[0],
            None if channels is None else channels * len(self.pooling),
        )

    def get_config(self):
        config = super().get_config()
        config["pooling"] = list(self.pooling)
        return config


@keras.saving.register_keras_serializable(package="tfiqa")
class MultiLevelHead(keras.layers.Layer):
    """Pools the chosen feature levels, concatenates them and regresses a score.

    For each level: `GlobalPooling(pooling)`; concatenated; then per entry of
    `head_units`: Dense -> BatchNorm (if `batch_norm`) -> ReLU/PReLU ->
    Dropout; then Dense(1) -> `output_activation`.

    Args:
        levels: tuple of str. Feature levels to use, e.g. ("P2", "P3", "P4",
            "P5"); ("P5",) is the single-level (last stage) head.
        pooling: tuple of str. See `GlobalPooling`.
        head_units: tuple of int. Hidden layer widths (MetaIQA: (1024, 512)).
        dropout: float. Dropout rate after each hidden layer.
        batch_norm: bool. Batch normalisation after each hidden Dense.
        activation: str. "relu" or "prelu" (MetaIQA).
        output_activation: str. "sigmoid" (scores in [0, 1]) or "linear".
        input_norm: bool. Standardise the pooled vector (a BatchNormalization
            before the MLP): pooled statistics of different depths differ in
            scale by orders of magnitude, which a frozen backbone never fixes.

    Returns:
        float32 tensor (batch, 1).

    Example:
    ```python
    head = MultiLevelHead(levels=("P4", "P5"), pooling=("avg", "std"))
    score = head({"P4": p4, "P5": p5})  # (batch, 1)
    ```
    """

    def __init__(
        self,
        levels=("P2", "P3", "P4", "P5"),
        pooling=("avg",),
        head_units=(512,),
        dropout=0.25,
        batch_norm=True,
        activation="relu",
        output_activation="sigmoid",
        input_norm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_norm = bool(input_norm)
        self.levels = tuple(levels)
        self.pooling = tuple(pooling)
        self.head_units = tuple(int(u) for u in head_units)
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.activation = activation
        self.output_activation = output_activation
        if not self.levels:
            raise ConfigError("model.levels must not be empty. Received: levels=[]")
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"Head activation must be one of {ACTIVATIONS}. "
                f"Received: activation={activation!r}"
            )
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"model.output_activation must be one of {OUTPUT_ACTIVATIONS}. "
                f"Received: output_activation={output_activation!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(
                f"model.dropout must be in [0, 1). Received: dropout={dropout!r}"
            )
        self.pools = [
            GlobalPooling(self.pooling, name=f"pool_{level}") for level in self.levels
        ]
        # One flat list (Dense, BN?, ReLU/PReLU, Dropout?) per hidden layer.
        self.hidden = []
        if self.input_norm:
            self.hidden.append(keras.layers.BatchNormalization(name="input_bn"))
        for i, units in enumerate(self.head_units):
            self.hidden.append(keras.layers.Dense(units, name=f"dense_{i}"))
            if self.batch_norm:
                self.hidden.append(keras.layers.BatchNormalization(name=f"bn_{i}"))
            if activation == "prelu":
                self.hidden.append(keras.layers.PReLU(name=f"prelu_{i}"))
            else:
                self.hidden.append(keras.layers.ReLU(name=f"relu_{i}"))
            if self.dropout > 0:
                self.hidden.append(
                    keras.layers.Dropout(self.dropout, name=f"dropout_{i}")
                )
        self.score = keras.layers.Dense(1, name="score_dense")

    def build(self, input_shape):
        missing = [level for level in self.levels if level not in input_shape]
        if missing:
            raise ConfigError(
                f"model.levels {missing} are not produced by the backbone. "
                f"Received: levels={list(self.levels)}, backbone levels "
                f"{sorted(input_shape)}"
            )
        width = 0
        for pool, level in zip(self.pools, self.levels, strict=True):
            pool.build(input_shape[level])
            width += input_shape[level][-1] * len(self.pooling)
        shape = (None, width)
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.score.build(shape)
        self.built = True

    def pool(self, features):
        """The pooled, concatenated levels (batch, width): the MLP's input.

        With a frozen backbone this vector is all the head needs, so
        `tfiqa.training.transfer` caches it and trains the MLP on it alone.
        """
        pooled = [
            pool(features[level])
            for pool, level in zip(self.pools, self.levels, strict=True)
        ]
        return pooled[0] if len(pooled) == 1 else keras.ops.concatenate(pooled, -1)

    def regress(self, pooled, training=None, logits=False):
        """The MLP on pooled features: (batch, width) -> scores (batch, 1);
        with `logits=True`, before `output_activation`."""
        x = pooled
        for layer in self.hidden:
            if isinstance(
                layer, (keras.layers.Dropout, keras.layers.BatchNormalization)
            ):
                x = layer(x, training=training)
            else:
                x = layer(x)
        x = keras.ops.cast(self.score(x), "float32")
        if self.output_activation == "sigmoid" and not logits:
            x = keras.ops.sigmoid(x)
        return x

    def call(self, features, training=None, logits=False):
        """(batch, 1) scores; with `logits=True`, before `output_activation`."""
        return self.regress(self.pool(features), training=training, logits=logits)

    def compute_output_shape(self, input_shape):
        first = next(iter(input_shape.values()))
        return (first[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "levels": list(self.levels),
                "pooling": list(self.pooling),
                "head_units": list(self.head_units),
                "dropout": self.dropout,
                "batch_norm": self.batch_norm,
                "activation": self.activation,
                "output_activation": self.output_activation,
                "input_norm": self.input_norm,
            }
        )
        return config
