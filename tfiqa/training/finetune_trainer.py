"""The `finetune` stage: regression on human MOS.

MSE (or MAE) between the predicted score and the MOS in [0, 1], optionally
plus an all-pairs ranking term on the MOS order inside each batch
(`stages.finetune.rank_weight`). The backbone and the head have their own learning
rates. SRCC/PLCC on the validation split are computed at the end of every
epoch (in numpy, over the whole split); the best epoch by validation SRCC is
kept and training stops after `patience` epochs without improvement. The
test split is never looked at during training.
"""

import math

import numpy as np
import tensorflow as tf

from tfiqa.errors import ConfigError
from tfiqa.models.scoring import predict
from tfiqa.training.losses import batch_ranking_terms, mse_terms

LOSSES = ("mse", "mae")


def _mae_terms(predictions, targets):
    predictions = tf.cast(tf.reshape(predictions, [-1]), tf.float32)
    targets = tf.cast(tf.reshape(targets, [-1]), tf.float32)
    absolute = tf.reduce_sum(tf.abs(predictions - targets))
    return absolute, tf.cast(tf.size(targets), tf.float32)


def reinit_score_layer(model, seed):
    """Draws new weights for the score layer (`model.head.score`) from its
    own initialisers, seeded; every other weight is kept."""

    layer = model.head.score
    for variable, initializer in (
        (layer.kernel, layer.kernel_initializer),
        (layer.bias, layer.bias_initializer),
    ):
        if variable is None:
            continue
        config = initializer.get_config()
        if "seed" in config:
            config["seed"] = int(seed)
        fresh = type(initializer).from_config(config)
        variable.assign(fresh(variable.shape, variable.dtype))
    return layer


class FinetuneTrainer:
    """Loss terms, scoring and model selection of the fine-tuning stage.

    Args:
        model: keras.Model mapping uint8 images (B, c, c, 3) to scores (B,).
        loss: str. "mse" or "mae".
        rank_weight: float. Weight of the in-batch MOS-order hinge term.
        patience: int. Epochs without a better validation SRCC before
            stopping; 0 never stops early.

    Example:
    ```python
    trainer = FinetuneTrainer(model, loss="mse", rank_weight=0.1)
    loop = DistributedLoop(strategy, model, trainer.compute_terms, groups,
                           "finetune", loss_weights=trainer.loss_weights)
    ```
    """

    def __init__(self, model, loss="mse", rank_weight=0.0, patience=5):
        if loss not in LOSSES:
            raise ConfigError(
                f"stages.finetune.loss must be one of {list(LOSSES)}. "
                f"Received: {loss!r}"
            )
        self.model = model
        self.loss = loss
        self.rank_weight = float(rank_weight)
        self.patience = int(patience)
        self.best = None  # {"epoch": int (1-based), "srcc": float, ...}

    @property
    def loss_weights(self):
        weights = {self.loss: 1.0}
        if self.rank_weight > 0:
            weights["rank"] = self.rank_weight
        return weights

    def compute_terms(self, batch, training):
        images, mos = batch
        return self.terms(self.model(images, training=training), mos)

    def terms(self, predictions, mos):
        """The loss terms of predicted scores (B,) or (B, 1) against MOS (B,)."""
        predictions = tf.reshape(predictions, [-1])
        terms_fn = mse_terms if self.loss == "mse" else _mae_terms
        terms = {self.loss: terms_fn(predictions, mos)}
        if self.rank_weight > 0:
            terms["rank"] = batch_ranking_terms(predictions, mos)
        return terms

    def predict(self, images):
        """Scores (N,) numpy of a uint8 batch, inference mode."""
        return predict(self.model, images)

    def score_dataset(self, dataset, multi_crop=False):
        """Predictions and MOS over a dataset of (images, mos) elements.

        With `multi_crop`, each element is one image's crops (N, c, c, 3)
        and the prediction is the mean of their scores.
        """
        predictions, targets = [], []
        for images, mos in dataset:
            scores = self.predict(images)
            if multi_crop:
                predictions.append(np.atleast_1d(scores.mean()))
                targets.append(np.atleast_1d(mos.numpy()))
            else:
                predictions.append(scores)
                targets.append(mos.numpy())
        return np.concatenate(predictions), np.concatenate(targets)

    def evaluate(self, dataset, multi_crop=False, fit=True):
        """Correlations of predictions with MOS over a whole dataset.

        Args:
            dataset: elements (images, mos); see `score_dataset`.
            multi_crop: bool. Elements are one image's crops.
            fit: bool. True gives SRCC, KRCC, and PLCC and RMSE after the
                4-parameter logistic mapping (the reporting convention);
                False gives SRCC and raw PLCC only, cheap enough for every
                epoch (the logistic fit can take seconds when it struggles).
        """
        from tfiqa.metrics import evaluate_predictions, plcc, srcc

        predictions, targets = self.score_dataset(dataset, multi_crop)
        if not fit:
            return {
                "srcc": float(srcc(predictions, targets)),
                "plcc": float(plcc(predictions, targets)),
            }
        metrics = evaluate_predictions(predictions, targets)
        return {
            k: float(metrics[k]) for k in ("srcc", "plcc", "krcc", "rmse", "plcc_raw")
        }

    def is_better(self, val_metrics):
        """True when `val_metrics` beats the best epoch so far (by SRCC)."""
        score = val_metrics.get("srcc", float("nan"))
        if not math.isfinite(score):
            return self.best is None
        best = self.best.get("srcc", float("nan")) if self.best else float("nan")
        return not math.isfinite(best) or score > best

    def should_stop(self, epoch):
        """Early stopping: `patience` epochs (0-based `epoch`) since the best."""
        if self.patience <= 0 or self.best is None:
            return False
        return (epoch + 1) - self.best["epoch"] >= self.patience
