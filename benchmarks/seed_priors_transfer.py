"""Do the synthetic-distortion priors help on authentic photos (biq2021-dev)?

Priors (`tfiqa.priors.heads`, arms `meta`, `multitask`, `rank`) are trained
as in `seed_priors_lodo.py` but on all 25 KADID types of the training
sources, from the same cache of 224 px centre crops. Each prior's head is
then fitted to the MOS of biq2021-dev photos, from features of the *whole
512 px photo* (the `lite0:full` view `lite_features.py` caches): the same
frozen backbone and pooling, so the head applies, but at another scale and
on another kind of image than the crops it was trained on. Arms:

- `meta`, `multitask`, `rank`: the prior's head, fine-tuned;
- `scratch`: the same head from random initial weights.

(Ridge on the same features: `results/lite_recipe.md`, arm `lite0:full/ridge/dev`.)

Every head arm gets the same fit: standardised features (training part's
statistics), full-batch Adam on the sigmoid's MSE for `fit_steps` steps,
the step with the best validation SRCC kept. 5 content-disjoint splits of
biq2021-dev made as in `lite_recipe.py` (65/15/20, near-duplicates grouped),
seeds 0 and 1 (seed s uses prior s of each arm and initial weights s);
summary through `arms.summarize_arms` (test parts, median over splits,
bootstrap intervals, paired differences to `scratch`).

Example:
```
.venv/bin/python benchmarks/run.py seed_priors_transfer --set data_dir=../shared/data
```
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from arms import arm_result, summarize_arms  # noqa: E402
from common import script  # noqa: E402
from lite_recipe import FeatureTable, dev_splits, read_photos  # noqa: E402
from seed_priors_lodo import feature_rows, prior_trainer  # noqa: E402

PRIOR_ARMS = ("meta", "multitask", "rank")


def train_priors(args):
    """{(arm, seed): Prior} on every type of the cached training sources."""
    from tfiqa.priors.tasks import TaskSampler, standardiser

    train, _, cache = feature_rows(args)
    types = list(range(len(cache.types)))
    mean, std = standardiser(train, types)
    sampler = TaskSampler((train - mean) / std, types)
    trainer = prior_trainer(args, train.shape[-1])
    priors = {}
    for arm in PRIOR_ARMS:
        for seed in range(args.seeds):
            priors[(arm, seed)] = trainer.train(arm, sampler, seed)
            print(f"prior {arm} {seed}: {priors[(arm, seed)].seconds:.0f}s", flush=True)
    return priors, train.shape[0]


def fit_head(weights, z, y, seed, args):
    """Fine-tunes a head from `weights` (None: random init); test scores and
    the chosen step."""
    import keras
    import tensorflow as tf

    from tfiqa.metrics import srcc
    from tfiqa.priors.heads import build_head, sigmoid_mse

    model = build_head(z["train"].shape[1], args.hidden, seed)
    if weights is not None:
        for variable, value in zip(model.trainable_variables, weights, strict=True):
            variable.assign(value)
    optimizer = keras.optimizers.Adam(args.fit_learning_rate)
    x_train = tf.constant(z["train"], tf.float32)
    y_train = tf.constant(y["train"], tf.float32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = sigmoid_mse(y_train, tf.reshape(model(x_train), [-1]))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)

    def scores(part):
        return model(z[part], training=False).numpy()[:, 0]

    best = (srcc(scores("val"), y["val"]), 0, scores("test"))
    for index in range(1, args.fit_steps + 1):
        step()
        if index % 10 == 0:
            value = srcc(scores("val"), y["val"])
            if value > best[0]:
                best = (value, index, scores("test"))
    return {"test": best[2], "val_srcc": float(best[0]), "best_step": best[1]}


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    priors, sources = train_priors(args)
    data_dir = os.path.abspath(args.data_dir)
    dev, _ = read_photos(
        data_dir, args.duplicate_similarity, os.path.abspath(args.lite_out)
    )
    table = FeatureTable(os.path.abspath(args.lite_out), args.crop_size)
    results = []
    for index, split in enumerate(dev_splits(dev, args.splits)):
        x = {p: table.get("lite0:full", split[p]) for p in ("train", "val", "test")}
        y = {p: np.float32([r["mos"] for r in split[p]]) for p in split}
        mean, std = x["train"].mean(0), x["train"].std(0)
        z = {p: (x[p] - mean) / np.where(std > 1e-6, std, 1.0) for p in x}
        for seed in range(args.seeds):
            for arm in (*PRIOR_ARMS, "scratch"):
                start = time.time()
                weights = None if arm == "scratch" else priors[(arm, seed)].weights
                fit = fit_head(weights, z, y, seed, args)
                predictions = fit.pop("test")
                results.append(
                    arm_result(
                        arm,
                        f"split{index}",
                        seed,
                        predictions,
                        y["test"],
                        **fit,
                        budget={
                            "fit_steps": args.fit_steps,
                            "fit_photos": len(y["train"]),
                            "seconds": time.time() - start,
                        },
                    )
                )
                print(
                    f"split{index} seed{seed} {arm}: {results[-1]['srcc']:.3f}",
                    flush=True,
                )
    notes = (
        "Test parts of biq2021-dev, 5 content-disjoint splits, every choice on "
        "validation. Priors: 224 px centre crops of "
        f"{sources} training sources x 25 KADID types x 5 levels, labels by "
        f"level, {args.meta_steps} outer steps each; heads then fitted on "
        "whole-photo (512 px) features of the same frozen Lite0 (another scale "
        "and image kind than the priors saw). Every arm: the same head, "
        f"{args.fit_steps} full-batch Adam steps, best validation step kept."
    )
    summarize_arms(
        results,
        args.name,
        baseline="scratch",
        title="Synthetic-distortion priors fitted on biq2021-dev (whole-photo Lite0)",
        notes=notes,
        min_splits=args.splits,
        min_seeds=args.seeds,
    )


if __name__ == "__main__":
    script(__file__)
