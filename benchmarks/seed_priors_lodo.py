"""MetaIQA's claim on cached features: leave one distortion type out.

Does a meta-learned quality prior adapt to an unseen distortion type from a
few labels better than the same head trained on the same tasks without an
inner loop? Every prior is a small head (`tfiqa.priors.heads`) on frozen
ImageNet EfficientNet-Lite0 features of 224 px centre crops (mean and std
of P2..P5), cached once for each pristine source at all 25 KADID types x 5
levels (`DistortedFeatureCache`, stage `cache`).

Sources: `train_sources` from BSDS500/train and CSun_Hays80 (training
tasks), `val_sources` from BSDS500/test, Kodak24 and McMaster, split in two
halves by content: the *adaptation* half (the gate's tasks, the k labelled
examples) and the *test* half (scored once). Labels are distortion levels,
`(5 - level) / 4`: within one source the levels of a type are nested and
strictly worse (the distortion tests prove it), so they order quality within
content exactly, and a level is the same distortion strength on every
source. A full-reference pseudo-MOS (absolute MS-SSIM of different crops)
instead moves with content, and a head trained on it learns content.

For each held-out type H (all 25 unless `held_out` lists some):
- arms `meta` (second-order MAML with Meta-SGD rates), `multitask` (same
  episodes, no inner loop), `rank` (pairwise hinge within a source) train
  `priors` heads each (seeds 0..priors-1) on the 24 other types of the
  training sources, with equal budgets (steps x tasks x examples);
  standardisation uses training sources and types only;
- the gate chooses each prior's inner step-size scale on `gate_tasks`
  validation tasks (other types, adaptation sources) and records adapted
  vs 0-shot query loss and SRCC; a prior whose adaptation does not beat
  0-shot fails and its adapted rows are left out (k = 0 rows stay);
- k = 0, 5, 10, 50 labelled examples of H are drawn (`repeats` times, the
  same draws for every arm) from the adaptation sources; each prior adapts
  with `inner_steps` SGD steps at its gate scale and scores every level of
  H on the test sources; `scratch` is ridge regression on the k examples
  (penalty chosen on the gate's tasks);
- metric: SRCC between scores and levels over all test images of H.

Writes `results/<name>.{json,md}`: per arm and k the median over held-out
types of the median over priors, a bootstrap 95% interval (test sources
and priors resampled within each type, then types), the share of types on
which `meta` beats `multitask`, and the gate's numbers. Per-prior rows and
test scores are kept in `out/` so that an interrupted run resumes.

Example:
```
.venv/bin/python benchmarks/run.py seed_priors_lodo --set data_dir=../shared/data
```
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script  # noqa: E402
from seed_priors_summary import ARMS, summarize  # noqa: E402

TRAIN_FOLDERS = ("BSDS500/train", "CSun_Hays80")
VAL_FOLDERS = ("BSDS500/test", "Kodak24", "McMaster")
RIDGE_ALPHAS = np.logspace(-2, 4, 13)


def sources(data_dir, folders, count, seed=0):
    """`count` source paths drawn (seeded) from `folders` of pristine/."""
    from tfiqa.data.pristine import list_images

    paths = sorted(
        str(p)
        for folder in folders
        for p in list_images(os.path.join(data_dir, "pristine", folder))
    )
    order = np.random.default_rng(seed).permutation(len(paths))
    return [paths[i] for i in order[:count]]


def prior_trainer(args, width):
    """The `PriorTrainer` every arm trains with, from the parameters."""
    from tfiqa.priors.heads import PriorTrainer

    return PriorTrainer(
        width,
        hidden=args.hidden,
        steps=args.meta_steps,
        meta_batch=args.meta_batch,
        support=args.support,
        query=args.query,
        inner_steps=args.inner_steps,
    )


def feature_rows(args):
    """(train rows, val rows, cache) filled in interleaved order, so that an
    interrupted run has cached both sides alike."""
    import logging

    from tfiqa.distortions import distortion_set
    from tfiqa.priors import DistortedFeatureCache, lite0_extractor

    logging.getLogger("tfiqa.priors").setLevel(logging.INFO)
    logging.basicConfig(format="%(asctime)s %(message)s")
    data_dir = os.path.abspath(args.data_dir)
    train = sources(data_dir, TRAIN_FOLDERS, args.train_sources)
    val = sources(data_dir, VAL_FOLDERS, args.val_sources)
    extract, key = lite0_extractor(args.crop_size)
    cache = DistortedFeatureCache(
        args.out, extract, key, distortion_set("kadid"), crop_size=args.crop_size
    )
    order = [p for pair in zip(train, val, strict=False) for p in pair]
    order += train[len(val) :] + val[len(train) :]
    cache.features(order, log_every=5)
    return cache.features(train), cache.features(val), cache


def held_out_order(types, given):
    """The held-out types; all of them spread over the KADID groups, so
    that an interrupted run has covered every group alike."""
    if given:
        return [t.strip() for t in given.split(",") if t.strip()]
    return [types[i] for start in range(5) for i in range(start, len(types), 5)]


def ridge_scores(sx, sy, test_x, alpha):
    """Ridge on the k examples (bias unpenalised), scores of `test_x`."""
    mean_x, mean_y = sx.mean(0), sy.mean()
    x = sx - mean_x
    # Dual form: k examples, width features.
    a = np.linalg.solve(x @ x.T + alpha * np.eye(len(x)), sy - mean_y)
    return (test_x - mean_x) @ (x.T @ a) + mean_y


def ridge_alpha(tasks):
    """The ridge penalty with the best mean query SRCC on the gate's tasks."""
    from tfiqa.priors.gate import task_srcc

    def quality(alpha):
        return np.mean(
            [
                task_srcc(
                    ridge_scores(t["support_x"], t["support_y"], t["query_x"], alpha),
                    t["query_y"],
                )
                for t in tasks
            ]
        )

    return float(max(RIDGE_ALPHAS, key=quality))


class HeldOut:
    """Standardised rows, samplers, gate tasks and test set for one type."""

    def __init__(self, name, types, train, val, args):
        from tfiqa.priors.feature_cache import row_index
        from tfiqa.priors.gate import validation_tasks
        from tfiqa.priors.tasks import (
            TaskSampler,
            level_labels,
            lodo_types,
            standardiser,
        )

        self.name, self.index = name, types.index(name)
        self.train_types = [types.index(t) for t in lodo_types(types, name)]
        mean, std = standardiser(train, self.train_types)
        half = len(val) // 2
        adapt, test = (val[:half] - mean) / std, (val[half:] - mean) / std
        self.sampler = TaskSampler((train - mean) / std, self.train_types)
        self.gate_tasks = validation_tasks(
            TaskSampler(adapt, self.train_types),
            args.gate_tasks,
            args.support,
            args.query,
        )
        self.adapt = TaskSampler(adapt, [self.index])
        rows = [row_index(self.index, level) for level in range(1, 6)]
        self.test_x = test[:, rows].reshape(-1, test.shape[-1])
        self.test_y = np.tile(level_labels(range(1, 6)), len(test))
        self.test_source = np.repeat(np.arange(len(test)), 5)

    def labelled(self, k, repeat):
        """k labelled examples of the held-out type (the same for every arm)."""
        rng = np.random.default_rng(1000 * repeat + k)
        sources = np.arange(len(self.adapt.rows))
        x, y, _ = self.adapt.examples(self.index, sources, k, rng)
        return x, y


def prior_runs(held, arm, seed, trainer, args):
    """Rows (one per k) and test scores (k -> (repeats, images)) of one prior."""
    from tfiqa.priors.gate import gate_decision, rate_scores, task_srcc

    prior = trainer.train(arm, held.sampler, seed)
    scales = [float(v) for v in str(args.gate_scales).split(",")]
    decision = gate_decision(rate_scores(prior, held.gate_tasks, scales))
    base = {
        "held_out": held.name,
        "arm": arm,
        "prior": seed,
        "gate_passed": decision["passed"],
        "gate_scale": decision["scale"],
        "gate_zero_shot": decision["zero_shot"],
        "gate_adapted": decision["adapted"],
        "train_loss_last50": float(np.mean(prior.history["loss"][-50:])),
        "seconds": prior.seconds,
    }
    rows, scores = [], {}
    for k in [int(v) for v in str(args.shots).split(",")]:
        draws = []
        for repeat in range(args.repeats if k else 1):
            if k == 0:
                _, zero = prior.adapt_and_score(
                    held.test_x[:1], held.test_y[:1], held.test_x, 0.0
                )
                draws.append(zero)
                continue
            sx, sy = held.labelled(k, repeat)
            adapted, _ = prior.adapt_and_score(sx, sy, held.test_x, decision["scale"])
            draws.append(adapted)
        scores[k] = np.stack(draws)
        srccs = [task_srcc(d, held.test_y) for d in draws]
        used = k == 0 or decision["passed"]
        rows.append({**base, "k": k, "srcc": float(np.mean(srccs)), "used": used})
    return rows, scores


def scratch_runs(held, args):
    from tfiqa.priors.gate import task_srcc

    alpha = ridge_alpha(held.gate_tasks)
    rows, scores = [], {}
    for k in [int(v) for v in str(args.shots).split(",") if int(v) > 0]:
        draws = [
            ridge_scores(*held.labelled(k, r), held.test_x, alpha)
            for r in range(args.repeats)
        ]
        scores[k] = np.stack(draws)
        srcc = float(np.mean([task_srcc(d, held.test_y) for d in draws]))
        rows.append(
            {"held_out": held.name, "arm": "scratch", "prior": 0, "k": k, "srcc": srcc}
            | {"used": True, "ridge_alpha": alpha}
        )
    return rows, scores


def _load(out):
    import pickle

    path = os.path.join(out, "lodo_runs.pkl")
    if not os.path.isfile(path):
        return {}
    with open(path, "rb") as f:
        return pickle.load(f)


def _save(out, runs):
    import pickle

    from tfiqa.files import atomic_path

    with atomic_path(os.path.join(out, "lodo_runs.pkl")) as tmp, open(tmp, "wb") as f:
        pickle.dump(runs, f)


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    train, val, cache = feature_rows(args)
    print(f"cached: train {train.shape}, val {val.shape} in {cache.folder}", flush=True)
    if args.stage == "cache":
        return
    trainer = prior_trainer(args, train.shape[-1])
    out = os.path.join(args.out, os.path.basename(cache.folder), args.name)
    os.makedirs(out, exist_ok=True)
    runs = _load(out)  # (held, arm, prior) -> (rows, scores, test_source)
    for name in held_out_order(cache.types, args.held_out):
        held = HeldOut(name, cache.types, train, val, args)
        for arm in ARMS:
            for seed in range(1 if arm == "scratch" else args.priors):
                if (name, arm, seed) in runs:
                    continue
                if arm == "scratch":
                    rows, scores = scratch_runs(held, args)
                else:
                    rows, scores = prior_runs(held, arm, seed, trainer, args)
                runs[(name, arm, seed)] = (rows, scores, held.test_source)
                _save(out, runs)
                print(
                    f"{name} {arm} prior {seed}: "
                    + ", ".join(f"k={r['k']} {r['srcc']:.3f}" for r in rows)
                    + (f" gate {rows[0]['gate_passed']}" if arm != "scratch" else ""),
                    flush=True,
                )
    summarize(runs, args, train.shape, val.shape)


if __name__ == "__main__":
    script(__file__)
