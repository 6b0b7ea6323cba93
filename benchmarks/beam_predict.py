"""Beam's DirectRunner (2 workers) against `tfiqa predict` on the same photos.

The first `count` photos of `folders` (under `data_dir`) are linked into one
folder and scored, each arm in a fresh process, by:
- `predict`: `tfiqa predict --model M --output X.csv FOLDER`;
- `beam 2 workers`: `tfiqa.beam.run_scoring` (what `tfiqa beam-predict`
  runs) on the DirectRunner with `--direct_num_workers workers`
  `--direct_running_mode running_mode`;
- `beam 1 worker` (`single_worker`): the DirectRunner in this process.
Per arm: wall time and throughput (process start and model load included),
CPU seconds per photo and peak memory of the whole process tree (sampled
from /proc every 0.2 s: the largest sum of RSS over its processes, an upper
bound since shared library pages count in each, and the largest single
RSS), and the largest |score difference| against
`predict`'s CSV. The Beam arms' metrics split the time per photo into
decoding and the model (crops + forward pass). Each of `accurate_model` (a
comma list) is run the same way on `accurate_count` photos. From the CPU
seconds per photo, the results give a Dataflow plan for `plan_photos`
photos: vCPU-hours and cost per million photos at the configured prices,
and the workers needed to finish in `plan_hours`. Writes results/beam_predict.{json,md}.

    .venv/bin/python benchmarks/run.py beam_predict --set data_dir=../shared/data
"""

import argparse
import csv
import glob
import json
import math
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    RESULT_PREFIX,
    ROOT,
    child_result,
    markdown_table,
    script,
    write_results,
)

TICK = os.sysconf("SC_CLK_TCK")
# The Beam arm's process: like `tfiqa beam-predict`, TensorFlow only in the
# workers (common's child processes import it first).
BEAM_CHILD = "--beam-child"


def link_photos(data_dir, folders, count, folder):
    """`folder` with links to the first `count` photos of `folders` (a
    comma-separated list under `data_dir`); returns how many it holds."""
    from tfiqa.inference.predict import is_image_name

    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    photos = []
    for i, sub in enumerate(folders.split(",")):
        source = os.path.join(data_dir, sub.strip())
        names = sorted(n for n in os.listdir(source) if is_image_name(n))
        photos += [(f"{i}_{n}", os.path.join(source, n)) for n in names]
    for name, path in photos[:count]:
        os.symlink(os.path.abspath(path), os.path.join(folder, name))
    return min(len(photos), count)


class TreeSampler(threading.Thread):
    """Samples a process and its descendants: the peak of their summed RSS
    (an upper bound: shared library pages count once per process), the
    peak RSS of the largest one, and their CPU seconds."""

    def __init__(self, pid, interval=0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_sum = self.peak_rss = 0
        self.cpu = {}  # pid -> last seen user + system seconds
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def sample(self):
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _read(f"/proc/{entry}/stat")
                if stat:
                    fields = stat[stat.rfind(")") + 2 :].split()
                    parents[int(entry)] = (int(fields[1]), fields)
        tree, grew = {self.pid}, True
        while grew:
            more = {p for p, (ppid, _) in parents.items() if ppid in tree} - tree
            tree |= more
            grew = bool(more)
        total = 0
        for pid in tree & set(parents):
            fields = parents[pid][1]
            self.cpu[pid] = (int(fields[11]) + int(fields[12])) / TICK
            rss = _kib(f"/proc/{pid}/status", "VmRSS:")
            total += rss
            self.peak_rss = max(self.peak_rss, rss)
        self.peak_sum = max(self.peak_sum, total)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _kib(path, key):
    for line in _read(path).splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def measure(command, log):
    """Runs `command`, sampling its process tree; returns the measures."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        stdout, _ = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{command[:4]} failed (exit {proc.returncode}); see {log}")
    lines = [x for x in stdout.splitlines() if x.startswith(RESULT_PREFIX)]
    return {
        "seconds": seconds,
        "cpu_seconds": sum(sampler.cpu.values()),
        "processes": len(sampler.cpu),
        "peak_sum_mb": sampler.peak_sum / 1024,
        "peak_rss_mb": sampler.peak_rss / 1024,
        "result": json.loads(lines[-1][len(RESULT_PREFIX) :]) if lines else None,
    }


def beam_child(params):
    """The Beam arm, in its own process: `run_scoring` with Beam's flags."""
    import logging

    from tfiqa.beam import run_scoring

    logging.getLogger().setLevel(logging.ERROR)
    summary = run_scoring(
        params["model"],
        params["output"],
        [params["folder"]],
        beam_args=params["beam_args"],
    )
    child_result(summary)


def beam_command(model, folder, output, workers, mode):
    beam_args = [
        f"--direct_num_workers={workers}",
        "--default_sdk_harness_log_level=ERROR",
    ]
    if mode:
        beam_args.append(f"--direct_running_mode={mode}")
    payload = {"model": model, "folder": folder, "output": output}
    payload["beam_args"] = beam_args
    return [sys.executable, os.path.abspath(__file__), BEAM_CHILD, json.dumps(payload)]


def read_scores(*paths):
    scores = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
            for row in csv.DictReader(f):
                scores[row["image"]] = (row["score"], row["error"])
    return scores


def compare(reference, scores):
    """(max |diff| of scores, rows whose image set or error differ)."""
    worst, mismatched = 0.0, len(set(reference) ^ set(scores))
    for image, (score, error) in reference.items():
        if image not in scores:
            continue
        other, other_error = scores[image]
        if error != other_error or bool(score) != bool(other):
            mismatched += 1
        elif score:
            worst = max(worst, abs(float(score) - float(other)))
    return worst, mismatched


def run_arm(model, arm, command, count, output, reference):
    """Measures one arm; returns its row and its scores."""
    print(f"{model}, {arm}: {count} photos ...", flush=True)
    m = measure(command, output + ".log")
    shards = sorted(glob.glob(output + "-*-of-*.csv")) or [output + ".csv"]
    scores = read_scores(*shards)
    worst, mismatched = compare(reference or scores, scores)
    row = {
        "model": model,
        "arm": arm,
        "photos": count,
        "seconds": round(m["seconds"], 1),
        "photos/s": round(count / m["seconds"], 2),
        "CPU s/photo": round(m["cpu_seconds"] / count, 4),
        "processes": m["processes"],
        "peak RSS MB, sum": round(m["peak_sum_mb"]),
        "peak RSS MB, largest process": round(m["peak_rss_mb"]),
        "max abs diff vs predict": float(f"{worst:.3g}"),
        "rows differing": mismatched,
    }
    metrics = (m["result"] or {}).get("metrics", {})
    if metrics:
        decode = metrics["decode_msecs_sum"] / max(1, metrics["decode_msecs_count"])
        model = metrics["inference_batch_latency_micro_secs_sum"] / 1000 / count
        row["decode ms/photo"] = round(decode, 1)
        row["model ms/photo"] = round(model, 1)
        row["model loads"] = metrics.get("load_model_latency_milli_secs_count", 0)
    row["cpu_seconds"] = m["cpu_seconds"]
    print(f"  {row}", flush=True)
    return row, scores


def run_model(params, model, count, tag, out):
    """Every arm on `count` linked photos, then the workers arm on one photo
    (its start-up cost); returns the rows."""
    folder = os.path.join(out, f"photos_{tag}")
    count = link_photos(params.data_dir, params.folders, count, folder)
    workers = (params.workers, params.running_mode)
    arms = [("predict", None), (f"beam, {params.workers} workers", workers)]
    if params.single_worker:
        arms.append(("beam, 1 worker in process", (1, "")))
    rows, reference = [], None
    for arm, beam in arms:
        output = os.path.join(out, f"{tag}_{'beam' if beam else 'predict'}")
        output += f"_{beam[0]}" if beam else ""
        for old in glob.glob(glob.escape(output) + "*"):
            os.remove(old)
        if beam is None:
            command = [sys.executable, "-m", "tfiqa.cli", "predict", "--model", model]
            command += ["--output", output + ".csv", folder]
        else:
            command = beam_command(model, folder, output, *beam)
        row, scores = run_arm(model, arm, command, count, output, reference)
        reference = reference or scores
        rows.append(row)
    one = os.path.join(out, f"photos_{tag}_1")
    link_photos(params.data_dir, params.folders, 1, one)
    output = os.path.join(out, f"{tag}_startup")
    for old in glob.glob(glob.escape(output) + "*"):
        os.remove(old)
    command = beam_command(model, one, output, *workers)
    startup, _ = run_arm(model, "start-up", command, 1, output, None)
    beam = rows[1]
    steady = (beam["cpu_seconds"] - startup["cpu_seconds"]) / max(1, count - 1)
    beam["start-up CPU s"] = round(startup["cpu_seconds"], 1)
    beam["CPU s/photo after start-up"] = round(steady, 4)
    for row in rows:
        row["throughput vs predict"] = round(row["photos/s"] / rows[0]["photos/s"], 2)
        del row["cpu_seconds"]
    return rows


def large_photo_costs(params, out, models):
    """CPU seconds (best of 3, this process) to decode a BIQ2021 photo and a
    `large_photo` JPEG made from it (upscaled, with sensor-like noise), and
    to score each decoded photo with each model under its policy (crops,
    resizing, forward pass)."""
    import numpy as np
    from PIL import Image

    from tfiqa.data.image_io import load_image
    from tfiqa.inference import load

    folder = os.path.join(out, "photos_phone_1")
    small = os.path.join(folder, sorted(os.listdir(folder))[0])
    width, height = (int(x) for x in params.large_photo.split("x"))
    image = Image.open(small).convert("RGB").resize((width, height), Image.BICUBIC)
    noise = np.random.default_rng(0).normal(0, 4, (height, width, 3))
    pixels = np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)
    large = os.path.join(out, "large.jpg")
    Image.fromarray(pixels).save(large, quality=90)
    photos = {"small": small, "large": large}
    costs = {f"decode_{k}": _best_cpu(load_image, path) for k, path in photos.items()}
    decoded = {k: load_image(path) for k, path in photos.items()}
    for model in models:
        scorer = load(model)
        scorer.score(decoded["small"])  # trace once
        for key, array in decoded.items():
            costs[f"{model}_{key}"] = _best_cpu(scorer.score, array)
    costs["large_mb"] = os.path.getsize(large) / 2**20
    return costs


def _best_cpu(fn, *args, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn(*args)
        times.append(time.process_time() - start)
    return min(times)


def dataflow_plan(params, rows, costs):
    """Per model and photo size: vCPU time per photo, cost per million and
    workers for the planned job. BIQ2021 photos: the steady CPU seconds per
    photo of the Beam workers arm (start-up excluded); large photos: that
    plus the extra decoding and scoring CPU a large photo costs."""
    plan = []
    price = params.vcpu_hour_usd + params.gb_per_vcpu * params.gb_hour_usd
    rate = params.plan_photos / (params.plan_hours * 3600)  # photos/s
    for row in rows:
        if "CPU s/photo after start-up" not in row:
            continue
        model, steady = row["model"], row["CPU s/photo after start-up"]
        extra = (
            costs["decode_large"]
            - costs["decode_small"]
            + costs[f"{model}_large"]
            - costs[f"{model}_small"]
        )
        sizes = (
            ("BIQ2021 512 px", steady, costs["decode_small"]),
            (params.large_photo, steady + extra, costs["decode_large"]),
        )
        for size, used, decode in sizes:
            cpu = used / params.utilization  # vCPU s/photo
            usd = cpu * 1e6 / 3600 * price
            workers = math.ceil(rate * cpu / params.vcpus_per_worker)
            plan.append(
                {
                    "model": model,
                    "photos": size,
                    "vCPU s/photo": round(cpu, 3),
                    "decode share": round(decode / used, 2),
                    "vCPU-hours per million": round(cpu * 1e6 / 3600),
                    "USD per million photos": round(usd, 2),
                    f"USD for {params.plan_photos / 1e6:g}M": round(
                        usd * params.plan_photos / 1e6
                    ),
                    f"n1-standard-{params.vcpus_per_worker} workers for "
                    f"{params.plan_hours} h": workers,
                }
            )
    return plan


def run(params):
    out = params.out
    os.makedirs(out, exist_ok=True)
    rows = run_model(params, params.model, params.count, "phone", out)
    accurate = argparse.Namespace(**{**vars(params), "single_worker": False})
    for model in [m for m in params.accurate_model.split(",") if m]:
        if params.accurate_count:
            rows += run_model(accurate, model, params.accurate_count, model, out)
    models = list(dict.fromkeys(row["model"] for row in rows))
    costs = large_photo_costs(params, out, models)
    plan = dataflow_plan(params, rows, costs)
    per_model = "; ".join(
        f"{m} {costs[m + '_small'] * 1e3:.0f} ms and {costs[m + '_large'] * 1e3:.0f} ms"
        for m in models
    )
    notes = (
        "CPU to decode (load_image, best of 3): "
        f"{costs['decode_small'] * 1000:.1f} ms for a BIQ2021 photo, "
        f"{costs['decode_large'] * 1000:.0f} ms for a {params.large_photo} JPEG "
        f"({costs['large_mb']:.1f} MB); to score them once decoded: {per_model}."
        "\n\n"
        "Dataflow plan (steady CPU seconds per photo of each model's Beam "
        "workers arm; for the large photos plus their extra decoding and "
        "scoring CPU; "
        f"at {params.utilization:.0%} utilisation; prices assumed: "
        f"${params.vcpu_hour_usd}/vCPU-hour, ${params.gb_hour_usd}/GB-hour, "
        f"{params.gb_per_vcpu} GB per vCPU):\n\n"
        + markdown_table(plan, list(plan[0]) if plan else [])
        + "\n\nphotos/s and seconds include process start and model load. CPU "
        "s/photo is the user + system time of the whole process tree; the "
        "start-up row runs the workers arm on one photo, and CPU s/photo after "
        "start-up = (CPU of the arm - CPU of the start-up) / (photos - 1). "
        "decode and model ms/photo are wall times inside the Beam workers "
        "(Beam metrics); model loads counts RunInference's loads (one per "
        "worker process)."
    )
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = write_results(
        "beam_predict", rows, columns, "Beam DirectRunner vs tfiqa predict", notes
    )
    print(text)
    return rows, plan


if __name__ == "__main__":
    if sys.argv[1:2] == [BEAM_CHILD]:
        sys.exit(beam_child(json.loads(sys.argv[2])))
    sys.exit(script(__file__, __doc__))
