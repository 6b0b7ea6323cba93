"""Leave-one-distortion-out (LODO): does a quality prior generalise to an
unseen distortion type?

For each swept type h:

1. Train each prior on every task type but h (h is in `stages.meta.holdout` for
   the meta prior and removed from `stages.rank.types` for the ranking prior):
   - "meta": the `meta` stage; "rank": the `rank` stage; "rank+meta": both;
   - "multitask": the fair baseline for the bi-level step: the `meta` stage
     on the same tasks and episodes without the inner loop
     (`stages.meta.inner_steps: 0`, no Meta-SGD), each task's S + Q images all but
     one in the query loss (support size 1), so the same images are seen;
   - "scratch": random weights (BatchNorm statistics estimated on the
     training types' images, so that the network computes something).
   Each prior is a `run_experiment` in `<workdir>/<h>/<prior>/`, so a sweep
   that stops resumes where it was.
2. Score h on test images made from the *validation* sources (content no
   prior was trained on), with
   - k = 0: the prior as it is;
   - k > 0: after adapting it to k labelled examples of h drawn from the
     *training* sources with exactly the adaptation the meta prior was
     meta-trained with: the same variables (`stages.meta.adapt`), the same
     `stages.meta.inner_steps` SGD steps on their MSE, at
     `stages.meta.inner_learning_rate` or, for a prior meta-trained with
     Meta-SGD, its learned per-parameter rates (read back from the prior's
     `adaptation.json`, see `tfiqa.training.adaptation`). Priors without a
     meta stage get the same variables, steps and scalar rate. BatchNorm uses the
     moving statistics (a deployed model's), and the adaptation works on fast
     weights: the prior itself is never modified. The SRCC is averaged over
     `repeats` draws of the k examples.
   Before scoring, `check_held_out` proves from the split files that the
   prior never trained on the test sources.
3. Write `lodo.csv` (one row per type, prior and k), `lodo.md` (a table
   with one row per held-out type and a column per prior and k, plus the
   mean) and `lodo.json` (the rows and, per type and prior, the adaptation
   that was applied) into the work directory.

Reference: the leave-one-distortion-out experiment of Zhu et al., MetaIQA,
CVPR 2020 (Table 2).
"""

import copy
import os
import warnings

import numpy as np

from tfiqa.data.split_record import check_no_leaks, source_id, write_stage_split
from tfiqa.errors import ConfigError
from tfiqa.progress import progress
from tfiqa.protocols.lodo_report import write_outputs
from tfiqa.training.adaptation import describe

PRIORS = ("meta", "multitask", "rank", "rank+meta", "scratch")
STAGES = {
    "meta": ["meta"],
    "multitask": ["meta"],
    "rank": ["rank"],
    "rank+meta": ["rank", "meta"],
}
# Priors whose own meta stage defines their k-shot adaptation.
ADAPTED_AS_TRAINED = ("meta", "rank+meta")


def check_priors(priors):
    priors = [p.strip() for p in priors if p.strip()]
    unknown = [p for p in priors if p not in PRIORS]
    if unknown or not priors:
        raise ConfigError(
            f"LODO priors must be among {list(PRIORS)}. Received: {priors}"
        )
    return priors


def check_shots(lodo):
    """The sorted k values of `protocols.lodo.shots` (checked with the test size)."""
    shots = sorted({int(k) for k in lodo.shots})
    if not shots or shots[0] < 0:
        raise ConfigError(
            f"protocols.lodo.shots must be non-negative integers. Received: {shots}"
        )
    if int(lodo.test_size) < 3:
        raise ConfigError(
            "protocols.lodo.test_size must be >= 3 for a rank correlation. "
            f"Received: {lodo.test_size}"
        )
    return shots


def sweep_types(config):
    """The task types of the config and the types to hold out in turn."""
    from tfiqa.distortions import resolve_types

    meta = config.stages.meta
    if meta.task_source != "synthetic":
        raise ConfigError(
            "The leave-one-distortion-out sweep runs on synthetic tasks "
            "(stages.meta.task_source: synthetic). Received: "
            f"stages.meta.task_source={meta.task_source!r}"
        )
    types = resolve_types(meta.distortion_set, meta.types or None)
    swept = list(config.protocols.lodo.types) or list(types)
    unknown = [t for t in swept if t not in types]
    if unknown:
        raise ConfigError(
            f"protocols.lodo.types must be task types {types}. Received: {swept}"
        )
    if len(types) < 2:
        raise ConfigError(
            f"LODO needs at least two task types. Received: stages.meta.types={types}"
        )
    return types, swept


def prior_config(config, types, held_out, prior, pristine_dir):
    """The experiment config that trains `prior` without `held_out`."""
    cfg = copy.deepcopy(config)
    cfg.stages.order = list(STAGES.get(prior, []))
    cfg.stages.meta.types = list(types)
    cfg.stages.meta.holdout = [held_out]
    ranking_types = list(cfg.stages.rank.types) or list(types)
    cfg.stages.rank.types = [t for t in ranking_types if t != held_out]
    cfg.data.pristine_dir = pristine_dir
    if prior == "multitask":
        meta = cfg.stages.meta
        meta.query_size = int(meta.support_size) + int(meta.query_size) - 1
        meta.support_size = 1
        meta.inner_steps = 0
        meta.learn_inner_lr = False
    return cfg


class HeldOutType:
    """Fixed test images and k-shot support draws for one held-out type."""

    def __init__(self, config, pristine, held_out, shots, repeats, seed):
        from tfiqa.data.episodes import task_episodes

        self.held_out = held_out
        meta = config.stages.meta
        crop = config.data.crop_size
        # Test crops come from sources no prior trained on, the k-shot
        # examples from the training sources; `sources` records both for
        # `check_held_out`.
        test_paths, support_paths = pristine["val"], pristine["train"]
        self.sources = {
            "test": sorted({source_id(p) for p in test_paths}),
            "train": sorted({source_id(p) for p in support_paths}),
        }
        test = next(
            iter(
                task_episodes(
                    test_paths,
                    [held_out],
                    crop,
                    1,
                    int(config.protocols.lodo.test_size),
                    1,
                    meta.label,
                    seed,
                )
            )
        )
        self.test_images = test["query_images"][0].numpy()
        self.test_labels = test["query_labels"][0].numpy()
        self.support = {}
        for k in shots:
            if k <= 0:
                continue
            draws = task_episodes(
                support_paths, [held_out], crop, k, 1, repeats, meta.label, seed + k
            )
            episode = next(iter(draws))
            self.support[k] = [
                (
                    episode["support_images"][r].numpy(),
                    episode["support_labels"][r].numpy(),
                )
                for r in range(repeats)
            ]


def check_held_out(run_dir, prior, data, pristine, pristine_dir, seed):
    """Proves from split files that no prior trained on the held-out test
    sources; raises `LeakError` otherwise.

    Writes `<run_dir>/splits/lodo.json` (train: the k-shot sources, test:
    the test sources) and, for the scratch prior, `splits/scratch.json` (the
    sources of its BatchNorm statistics), then checks them against the
    prior's own stage files. Only training counts: the priors validate on
    the test sources with the other types, and no prior is selected on them.
    """
    write_stage_split(
        run_dir, "lodo", pristine_dir, data.sources, seed, held_out=data.held_out
    )
    stages = list(STAGES.get(prior, ["scratch"]))
    if prior == "scratch":
        train = {source_id(p) for p in pristine["train"]}
        write_stage_split(run_dir, "scratch", pristine_dir, {"train": train}, seed)
    return check_no_leaks(run_dir, [*stages, "lodo"], parts=("train",))


def score_prior(model, data, shots, step):
    """{k: SRCC on the held-out test images} for one prior.

    Args:
        model: the prior's scoring model.
        data: `HeldOutType` (test images, k-shot support draws).
        shots: list of k.
        step: `MAMLStep` on `model` that adapts to the k examples (see
            `prior_adaptation`).
    """
    import tensorflow as tf

    from tfiqa.metrics import MetricWarning, srcc

    adapt_predict = tf.function(step.adapt_and_predict, reduce_retracing=True)
    predict = tf.function(
        lambda x: tf.reshape(model(x, training=False), [-1]), reduce_retracing=True
    )
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        for k in shots:
            if k <= 0:
                scores = predict(data.test_images).numpy()
                results[k] = srcc(scores, data.test_labels)
                continue
            values = []
            for images, labels in data.support[k]:
                adapted, _ = adapt_predict(images, labels, data.test_images)
                values.append(srcc(adapted.numpy(), data.test_labels))
            values = [v for v in values if np.isfinite(v)]
            results[k] = float(np.mean(values)) if values else float("nan")
    return results


def _scratch_model(config, pristine, types, seed):
    import keras

    from tfiqa.data.episodes import task_episodes
    from tfiqa.models import build_model
    from tfiqa.training.batchnorm import recalibrate_batchnorm

    keras.utils.set_random_seed(seed)
    model = build_model(config.model, crop_size=config.data.crop_size)
    meta = config.stages.meta
    batches = []
    count = max(1, int(meta.bn_recalibration_batches))
    episodes = task_episodes(
        pristine["train"],
        types,
        config.data.crop_size,
        meta.support_size,
        meta.query_size,
        meta.meta_batch_size,
        meta.label,
        seed,
    )
    for episode in episodes.take(count):
        images = episode["support_images"].numpy()
        batches.append(images.reshape(-1, *images.shape[2:]))
    recalibrate_batchnorm(model, batches)
    return model


def prior_adaptation(config, prior, run_dir, model):
    """The k-shot `MAMLStep` for one prior: the recipe its meta stage saved,
    or, for the others (the multi-task prior included), the config's
    meta-training recipe with its scalar rate."""
    from tfiqa.training.adaptation import (
        adaptation_spec,
        adaptation_step,
        load_adaptation,
    )

    if prior in ADAPTED_AS_TRAINED:
        spec, rates = load_adaptation(run_dir)
    else:
        spec, rates = adaptation_spec(config.stages.meta), None
    return adaptation_step(model, spec, rates)


def train_prior(config, types, held_out, prior, pristine, pristine_dir, workdir):
    """Trains (or resumes) one prior; returns (model, run metrics or {})."""
    if prior == "scratch":
        others = [t for t in types if t != held_out]
        return _scratch_model(config, pristine, others, int(config.runtime.seed)), {}
    from tfiqa.inference.backends.keras import load_keras_model
    from tfiqa.training.experiment import run_experiment

    cfg = prior_config(config, types, held_out, prior, pristine_dir)
    run_dir = os.path.join(workdir, held_out, prior)
    metrics = run_experiment(cfg, run_dir)
    model = load_keras_model(os.path.join(run_dir, "model.keras"))
    return model, metrics


def run_lodo(config, workdir, priors=("meta", "rank", "scratch"), repeats=3):
    """Runs the leave-one-distortion-out sweep; returns the result rows.

    Args:
        config: `ExperimentConfig`. Uses `meta` (task types, `lodo_*`
            settings, the meta prior's training), `ranking` (the ranking
            prior), `model`, `data` (crop size, pristine images), `trainer`.
        workdir: str. Priors are trained in `<workdir>/<type>/<prior>/`;
            `lodo.csv`, `lodo.md` and `lodo.json` are written here.
        priors: names among "meta", "rank", "rank+meta", "scratch".
        repeats: int. Draws of the k labelled examples averaged per k > 0.

    Returns:
        list of dicts {"type", "prior", "k", "srcc", "n_test"}.

    Example:
    ```python
    config = load_config("configs/metaiqa_lodo.yaml")
    rows = run_lodo(config, "runs/lodo", priors=["meta", "rank", "scratch"])
    ```
    """
    import tensorflow as tf

    from tfiqa.training.stages.meta_tasks import pristine_split

    priors = check_priors(priors)
    types, swept = sweep_types(config)
    shots = check_shots(config.protocols.lodo)
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    strategy = tf.distribute.get_strategy()
    pristine = pristine_split(config, strategy, workdir)
    pristine_dir = config.resolve_path(config.data.pristine_dir) or os.path.join(
        workdir, "data", "pristine"
    )
    seed = int(config.runtime.seed)
    rows, adaptations = [], []
    seeds = {"runtime": seed, "held_out_data": {}}
    verbose = int(config.runtime.verbose)
    runs = progress(len(swept) * len(priors), "LODO sweep", verbose, "run", True)
    for index, held_out in enumerate(swept):
        # Test crops use this seed, the k-shot draws this seed + k.
        seeds["held_out_data"][held_out] = seed * 1_009 + index
        data = HeldOutType(
            config, pristine, held_out, shots, int(repeats), seed * 1_009 + index
        )
        for prior in priors:
            model, _ = train_prior(
                config, types, held_out, prior, pristine, pristine_dir, workdir
            )
            run_dir = os.path.join(workdir, held_out, prior)
            check_held_out(run_dir, prior, data, pristine, pristine_dir, seed)
            step = prior_adaptation(config, prior, run_dir, model)
            scores = score_prior(model, data, shots, step)
            adaptations.append({"type": held_out, "prior": prior, **describe(step)})
            rows += [
                {
                    "type": held_out,
                    "prior": prior,
                    "k": k,
                    "srcc": float(scores[k]),
                    "n_test": int(len(data.test_labels)),
                }
                for k in shots
            ]
            print(
                f"[lodo] {held_out} / {prior}: "
                + ", ".join(f"k={k}: {scores[k]:.3f}" for k in shots),
                flush=True,
            )
            runs.add(1)
        write_outputs(workdir, rows, priors, shots, config, adaptations, repeats, seeds)
    return rows
