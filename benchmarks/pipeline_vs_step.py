"""Can the ranking input pipeline feed the train step? Per CPU core, with and
without device-side distortions.

Measures, on one CPU core (tf.data private thread pool of 1, one intra-op
thread), the images/s of the ranking pipeline (decode-once cache, crop,
distortion of every level, uint8) in two modes:
- "cpu": every distortion in tf.data (the default);
- "deferred": `device_distortions=True`: tf.data only crops (and distorts
  the JPEG types); the rest is left to the train step.
It also times the deferred distortions themselves (`device_distortion_fn`,
what the accelerator then runs inside the step) on this CPU, and sets the
pipeline rates against the rank train step's consumption: measured on this
CPU (benchmarks/results/training_throughput.json) and, without a GPU here,
projected for one GPU from the assumptions in `GPU_ASSUMED_IMG_S`.

Usage:
    .venv/bin/python benchmarks/pipeline_vs_step.py --crop 224 --batches 8
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS_DIR, script, write_results  # noqa: E402
from export_latency import make_calibration_images  # noqa: E402

# Assumed rank-step consumption (images/s, 224 px, batch 32, mixed precision)
# of one current data-centre GPU (A100/H100 class), from public training
# benchmarks of these networks; not measured here.
GPU_ASSUMED_IMG_S = {"mobilenet_v3_small": 6000, "resnet18": 3000, "vgg16": 700}


def time_pipeline(paths, crop, groups, batches, deferred):
    import tensorflow as tf

    from tfiqa.data.ranking import ranking_dataset

    ds = ranking_dataset(paths, None, crop, groups, seed=0, device_distortions=deferred)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    iterator = iter(ds.with_options(options))
    for _ in range(2):  # warm-up: traces the distortion branches it meets
        next(iterator)
    start = time.perf_counter()
    kept = []
    for _ in range(batches):
        images, labels = next(iterator)
        kept.append((images, labels))
    seconds = time.perf_counter() - start
    return batches * int(images.shape[0]) / seconds, kept


def time_device_distortions(kept, crop):
    import time

    from tfiqa.data.device_distortions import device_distortion_fn

    distort = device_distortion_fn(None, crop)
    for images, labels in kept[:2]:
        distort(images, labels)
    start = time.perf_counter()
    for images, labels in kept:
        distort(images, labels)[0].numpy()
    seconds = time.perf_counter() - start
    return sum(int(images.shape[0]) for images, _ in kept) / seconds


def step_rates():
    """{backbone: rank-step images/s} from the training throughput result."""
    path = os.path.join(RESULTS_DIR, "training_throughput.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        rows = json.load(f)["rows"]
    return {r["backbone"]: r["images_per_s"] for r in rows if r["mode"] == "rank"}


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    folder = make_calibration_images(os.path.join(args.out, "pristine"), 16, 512)
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    cpu_rate, _ = time_pipeline(paths, args.crop, args.groups, args.batches, False)
    deferred_rate, kept = time_pipeline(
        paths, args.crop, args.groups, args.batches, True
    )
    distort_rate = time_device_distortions(kept, args.crop)
    rows = [
        {"what": "pipeline, distortions in tf.data", "img/s per core": cpu_rate},
        {
            "what": "pipeline, deferred (crop + JPEG types)",
            "img/s per core": deferred_rate,
        },
        {
            "what": "deferred distortions in the step (this CPU)",
            "img/s per core": distort_rate,
        },
    ]
    for backbone, rate in step_rates().items():
        rows.append(
            {
                "what": f"rank step {backbone}, this CPU (2 cores)",
                "img/s": rate,
                "cores to feed, tf.data": rate / cpu_rate,
                "cores to feed, deferred": rate / deferred_rate,
            }
        )
    for backbone, rate in GPU_ASSUMED_IMG_S.items():
        rows.append(
            {
                "what": f"rank step {backbone}, one GPU (assumed, not measured)",
                "img/s": rate,
                "cores to feed, tf.data": rate / cpu_rate,
                "cores to feed, deferred": rate / deferred_rate,
            }
        )
    rows = [
        {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}
        for r in rows
    ]
    notes = (
        f"Crop {args.crop}, {args.groups} groups x 6 images per batch (pristine + "
        "5 levels), the fast KADID types, 16 generated 512 px pristine images "
        f"held decoded in memory; {args.batches} batches after 2 warm-up "
        "batches. 'cores to feed' = step images/s / pipeline images/s per core. "
        "No GPU was lent to this session: the GPU rows are a projection from "
        f"assumed step rates {GPU_ASSUMED_IMG_S} (images/s, 224 px, mixed "
        "precision, one A100/H100-class GPU), and assume the deferred "
        "distortions cost the GPU little next to the backbone (they are "
        "elementwise ops, small convolutions and resizes on 224 px crops), "
        "which was not measured."
    )
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print(
        write_results(
            "pipeline_vs_step", rows, columns, "Ranking pipeline vs train step", notes
        )
    )


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
