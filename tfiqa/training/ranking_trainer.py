"""The `rank` stage: Siamese ranking pretraining on synthetic distortions.

One forward pass scores a structured batch (groups of one source image and
one distortion type at several levels, plus the pristine crop) and every
ordered pair inside a group feeds the all-pairs hinge loss. Validation runs
on held-out pristine sources: pair accuracy and the SRCC between the score
and `-level` (lower level = better quality).

Reference: Liu et al., "RankIQA: Learning from Rankings for No-reference
Image Quality Assessment", ICCV 2017.
"""

import numpy as np
import tensorflow as tf

from tfiqa.errors import ConfigError
from tfiqa.models.scoring import predict
from tfiqa.training.losses import ranking_hinge_terms


class RankingTrainer:
    """Loss terms and validation of the ranking stage for one scoring model.

    The distributed loop calls `compute_terms` on each replica's share of a
    batch. A share must hold whole groups for every pair to be seen, so
    `groups_per_batch` should be a multiple of the number of replicas (the
    batches are laid out group by group).

    Args:
        model: keras.Model mapping uint8 images (N, c, c, 3) to scores (N,).
        margin: float. Hinge margin in score units (0.05 suits sigmoid
            scores in [0, 1]; RankIQA used 10 on unbounded scores).
        logit_margin: float. When > 0, rank the scores before the output
            sigmoid (`model.score_logits`, an `IQAModel`) with this margin
            in logit units instead: a linear output during ranking, so the
            hinge never pushes the sigmoid into saturation.

    Example:
    ```python
    trainer = RankingTrainer(model, margin=0.05)
    terms = trainer.compute_terms(next(iter(ranking_ds)), training=True)
    ```
    """

    def __init__(self, model, margin=0.05, logit_margin=0.0):
        self.model = model
        self.on_logits = float(logit_margin) > 0
        if self.on_logits and not hasattr(model, "score_logits"):
            raise ConfigError(
                "stages.rank.logit_margin needs an IQAModel (score_logits). "
                f"Received: {type(model).__name__}"
            )
        self.margin = float(logit_margin) if self.on_logits else float(margin)
        self._logits_fn = None

    def scores(self, images, training):
        """What the hinge ranks: (N,) scores, or logits with `logit_margin`."""
        if self.on_logits:
            return self.model.score_logits(images, training=training)
        return self.model(images, training=training)

    def compute_terms(self, batch, training):
        images, labels = batch
        scores = self.scores(images, training)  # (N,)
        hinge_sum, pairs, correct = ranking_hinge_terms(
            scores, labels["group"], labels["level"], self.margin
        )
        return {"loss": (hinge_sum, pairs), "pair_accuracy": (correct, pairs)}

    def predict(self, images):
        """Ranked values (N,) numpy of a uint8 batch, inference mode."""
        if not self.on_logits:
            return predict(self.model, images)
        if self._logits_fn is None:
            self._logits_fn = tf.function(
                lambda x: self.scores(x, False), reduce_retracing=True
            )
        return self._logits_fn(tf.convert_to_tensor(images)).numpy()

    def evaluate(self, batches):
        """Validation metrics on a list of (images, labels) numpy batches.

        Returns:
            dict with "loss" (mean hinge over all pairs), "pair_accuracy"
            and "srcc" (Spearman of score vs -level, all images pooled).
        """
        from tfiqa.metrics import srcc

        hinge_total = pairs_total = correct_total = 0.0
        all_scores, all_levels = [], []
        for images, labels in batches:
            scores = self.predict(images)
            hinge_sum, pairs, correct = ranking_hinge_terms(
                scores, labels["group"], labels["level"], self.margin
            )
            hinge_total += float(hinge_sum)
            pairs_total += float(pairs)
            correct_total += float(correct)
            all_scores.append(scores)
            all_levels.append(np.asarray(labels["level"]))
        scores = np.concatenate(all_scores)
        levels = np.concatenate(all_levels)
        return {
            "loss": hinge_total / pairs_total if pairs_total else float("nan"),
            "pair_accuracy": correct_total / pairs_total
            if pairs_total
            else float("nan"),
            "srcc": float(srcc(scores, -levels.astype(np.float64))),
        }
