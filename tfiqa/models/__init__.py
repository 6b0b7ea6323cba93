"""Backbones with multi-level features, the quality head and `IQAModel`."""

from tfiqa.models.backbones import (
    BACKBONES,
    LEVEL_STRIDES,
    LEVELS,
    BackboneSpec,
    build_backbone,
)
from tfiqa.models.head import GlobalPooling, MultiLevelHead
from tfiqa.models.iqa_model import IQAModel

__all__ = [
    "BACKBONES",
    "LEVELS",
    "LEVEL_STRIDES",
    "BackboneSpec",
    "GlobalPooling",
    "IQAModel",
    "MultiLevelHead",
    "build_backbone",
    "build_model",
]


def build_model(model_config, crop_size=224):
    """Builds an `IQAModel` from a `tfiqa.config.ModelConfig`.

    Args:
        model_config: `ModelConfig` (or any object with its fields).
        crop_size: int. Training crop size (usually `config.data.crop_size`):
            with `model_config.scoring` it makes the model's scoring policy
            (`ScoringConfig.policy`).
    """
    optional = {
        key: getattr(model_config, key)
        for key in ("batch_norm", "head_activation", "head_input_norm")
        if hasattr(model_config, key)
    }
    return IQAModel(
        backbone=model_config.backbone,
        weights=model_config.weights,
        levels=tuple(model_config.levels),
        pooling=tuple(model_config.pooling),
        head_units=tuple(model_config.head_units),
        dropout=model_config.dropout,
        output_activation=model_config.output_activation,
        scoring_policy=model_config.scoring.policy(crop_size),
        **optional,
    )
