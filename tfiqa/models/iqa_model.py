"""`IQAModel`: raw image in, quality score out."""

import warnings

import keras

from tfiqa.errors import ConfigDeprecationWarning, ConfigError
from tfiqa.models.backbones import build_backbone
from tfiqa.models.head import MultiLevelHead
from tfiqa.scoring_policy import ScoringPolicy

# Constructor keys of models saved before `scoring_policy` (in `.keras` files
# and preset cards) -> the policy's fields.
LEGACY_POLICY_KEYS = {
    "input_crop_size": "crop_size",
    "eval_crops": "crops",
    "small_images": "small_images",
    "input_resize": "resize",
}


@keras.saving.register_keras_serializable(package="tfiqa")
class IQAModel(keras.Model):
    """No-reference quality model: backbone feature levels -> pooled -> MLP.

    The model takes raw images, uint8 or float in [0, 255], of any height
    and width (it is fully convolutional up to the global pooling), and does
    its own normalisation, so an exported graph cannot skew from training.

    Args:
        backbone: str or keras.Model. A registered backbone name
            (`tfiqa.models.BACKBONES`), built here, or a backbone model
            mapping [0, 255] images to a dict of levels (as
            `build_backbone` returns), used as is and saved with the model.
        weights: str. "imagenet", "none" or a local weights file for the
            backbone's network, when `backbone` is a name. Only used when
            building; a loaded `.keras` file brings its own weights and never
            downloads.
        levels: tuple of str. Feature levels pooled by the head ("P2".."P5");
            ("P5",) is the single-level head.
        pooling: tuple of str. Any of "avg", "max", "std".
        head_units: tuple of int. Hidden widths of the MLP.
        dropout: float. Dropout after each hidden layer.
        output_activation: str. "sigmoid" (scores in [0, 1]) or "linear".
        batch_norm: bool. BatchNorm after each hidden Dense.
        head_input_norm: bool. Standardise the pooled features before the MLP
            (`MultiLevelHead(input_norm=True)`).
        head_activation: str. "relu" or "prelu".
        scoring_policy: `tfiqa.scoring_policy.ScoringPolicy`, its `to_dict`
            record, or None (the defaults). How a photo becomes the crops
            the model scores (crop size it was trained on, crops, small-image
            rule, resize step): every format follows it. Kept as
            `model.scoring_policy`.

    Returns:
        float32 scores of shape (batch,), higher is better (with "sigmoid",
        in [0, 1] on the MOS scale the model was trained on).

    Example:
    ```python
    model = IQAModel(backbone="resnet18", weights="none", levels=("P3", "P5"))
    scores = model(np.zeros((2, 64, 96, 3), "uint8"))  # (2,)
    model.save("model.keras")
    ```

    Reference:
        Liu et al., "RankIQA: Learning from Rankings for No-reference Image
        Quality Assessment", ICCV 2017; Zhu et al., "MetaIQA: Deep
        Meta-learning for No-Reference Image Quality Assessment", CVPR 2020.
    """

    def __init__(
        self,
        backbone="resnet18",
        weights="none",
        levels=("P2", "P3", "P4", "P5"),
        pooling=("avg",),
        head_units=(512,),
        dropout=0.25,
        output_activation="sigmoid",
        batch_norm=True,
        head_activation="relu",
        head_input_norm=False,
        scoring_policy=None,
        name="iqa_model",
        **kwargs,
    ):
        legacy = {key: kwargs.pop(key) for key in LEGACY_POLICY_KEYS if key in kwargs}
        if legacy:
            # Code written for the constructor of older versions keeps working.
            warnings.warn(
                f"IQAModel({', '.join(legacy)}) is deprecated: use "
                "scoring_policy=ScoringPolicy("
                + ", ".join(f"{LEGACY_POLICY_KEYS[key]}=..." for key in legacy)
                + ")",
                ConfigDeprecationWarning,
                stacklevel=2,
            )
            given = {} if scoring_policy is None else {"scoring_policy": scoring_policy}
            scoring_policy = self.upgrade_config({**legacy, **given})["scoring_policy"]
        if isinstance(scoring_policy, dict):
            scoring_policy = ScoringPolicy.from_dict(scoring_policy)
        scoring_policy = scoring_policy or ScoringPolicy()
        # === Layers ===
        if isinstance(backbone, dict):  # a backbone object, from `get_config`
            backbone = keras.saving.deserialize_keras_object(backbone)
        named = not isinstance(backbone, keras.Model)
        backbone_model = build_backbone(backbone, weights) if named else backbone
        head = MultiLevelHead(
            levels=levels,
            pooling=pooling,
            head_units=head_units,
            dropout=dropout,
            batch_norm=batch_norm,
            input_norm=head_input_norm,
            activation=head_activation,
            output_activation=output_activation,
            name="head",
        )

        # === Functional model ===
        images = keras.Input(shape=(None, None, 3), name="images")
        x = keras.ops.cast(images, "float32")
        features = backbone_model(x)
        score = head({level: features[level] for level in head.levels})  # (b, 1)
        score = keras.layers.Reshape((), dtype="float32", name="score")(score)  # (b,)
        super().__init__(inputs=images, outputs=score, name=name, **kwargs)

        # === Config ===
        self.backbone_name = backbone if named else backbone.name
        self._named_backbone = named
        self.backbone_weights = weights
        self.levels = tuple(levels)
        self.pooling = tuple(pooling)
        self.head_units = tuple(int(u) for u in head_units)
        self.dropout = float(dropout)
        self.output_activation = output_activation
        self.batch_norm = bool(batch_norm)
        self.head_input_norm = bool(head_input_norm)
        self.head_activation = head_activation
        self.scoring_policy = scoring_policy
        self.backbone = backbone_model
        self.head = head

    @property
    def backbone_variables(self):
        """Trainable variables of the backbone (for its own learning rate)."""
        return self.backbone.trainable_variables

    @property
    def head_variables(self):
        """Trainable variables of the head."""
        return self.head.trainable_variables

    def features(self, images, training=None):
        """The backbone's feature maps {"P2": ..., "P5": ...} for `images`."""
        return self.backbone(keras.ops.cast(images, "float32"), training=training)

    def score_logits(self, images, training=None):
        """(batch,) scores before the output activation (the sigmoid's logit;
        the score itself for a linear output)."""
        features = self.features(images, training=training)
        levels = {level: features[level] for level in self.head.levels}
        logits = self.head(levels, training=training, logits=True)  # (b, 1)
        return keras.ops.reshape(logits, (-1,))

    def get_config(self):
        return {
            "backbone": (
                self.backbone_name
                if self._named_backbone
                else keras.saving.serialize_keras_object(self.backbone)
            ),
            "weights": self.backbone_weights,
            "levels": list(self.levels),
            "pooling": list(self.pooling),
            "head_units": list(self.head_units),
            "dropout": self.dropout,
            "output_activation": self.output_activation,
            "batch_norm": self.batch_norm,
            "head_input_norm": self.head_input_norm,
            "head_activation": self.head_activation,
            "scoring_policy": self.scoring_policy.to_dict(),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = cls.upgrade_config(config)
        weights = config.pop("weights", "none")
        # The saved file carries the weights: rebuild without downloading or
        # reading the original weights file, but remember where they came from.
        model = cls(weights="none", **config)
        model.backbone_weights = weights
        return model

    @staticmethod
    def upgrade_config(config):
        """A copy of `config` with the policy keys of older saves
        (`LEGACY_POLICY_KEYS`) gathered into its `scoring_policy` record, so
        `.keras` files and preset cards of every version build alike."""
        config = dict(config)
        older = [key for key in LEGACY_POLICY_KEYS if key in config]
        if older and "scoring_policy" in config:
            raise ConfigError(
                "An IQAModel config has either scoring_policy or the older "
                f"{', '.join(LEGACY_POLICY_KEYS)}, not both. "
                f"Received: scoring_policy and {', '.join(older)}"
            )
        if older:
            config["scoring_policy"] = {
                LEGACY_POLICY_KEYS[key]: config.pop(key) for key in older
            }
        return config
