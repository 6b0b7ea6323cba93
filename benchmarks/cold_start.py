"""Cold start of `tfiqa predict` on one photo: wall time and peak memory.

Each model in `models` scores the same photo in a fresh process
(`python -m tfiqa.cli predict --model M --output OUT photo`), the way a
user's first command or a batch job's worker starts; the rows alternate
over `rounds` rounds so that machine load hits every row alike. Per model:
the median wall time and peak resident memory (the child's VmHWM), and
whether TensorFlow was imported (a `.tflite` model is read with LiteRT
alone). The photo is `photo` under `data_dir` when given, else a generated
512 x 512 image, so the benchmark runs on a fresh clone.

Writes `results/<name>.{json,md}`.

Example:
```
.venv/bin/python benchmarks/run.py cold_start \
    --set models=mobile-mnv3s:tflite,lite0-biq-int8,mobile-mnv3s,lite0-biq
```
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, script, write_results  # noqa: E402

# Runs the CLI, then reports its own peak memory and whether TF was loaded.
CHILD = (
    "import sys\n"
    "from tfiqa.cli import main\n"
    "sys.argv = ['tfiqa', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
    "    print('COLD', peak[0].split()[1], 'tensorflow' in sys.modules,"
    " file=sys.stderr)\n"
)


def _photo(args, folder):
    if args.data_dir and args.photo:
        return os.path.join(args.data_dir, args.photo)
    from PIL import Image

    rng = np.random.default_rng(0)
    path = os.path.join(folder, "photo.jpg")
    pixels = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def _cold_run(model, photo, output):
    command = [sys.executable, "-c", CHILD, "predict", "--model", model]
    command += ["--output", output, photo]
    env = {**os.environ, "PYTHONPATH": ROOT}
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    os.remove(output)
    lines = [x for x in proc.stderr.splitlines() if x.startswith("COLD ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{model}: exit {proc.returncode}: {proc.stderr[-2000:]}")
    _, peak_kb, tensorflow = lines[-1].split()
    return seconds, int(peak_kb) / 1024, tensorflow == "True"


def run(args):
    models = [m for m in args.models.split(",") if m]
    runs = {m: [] for m in models}
    with tempfile.TemporaryDirectory() as folder:
        photo = _photo(args, folder)
        output = os.path.join(folder, "scores.csv")
        for _ in range(args.rounds):
            for model in models:
                runs[model].append(_cold_run(model, photo, output))
    first = float(np.median([r[0] for r in runs[models[0]]]))
    table = []
    for model in models:
        seconds = [r[0] for r in runs[model]]
        peak_mb = float(np.median([r[1] for r in runs[model]]))
        table.append(
            {
                "model": model,
                "wall s (median)": round(float(np.median(seconds)), 2),
                "min .. max s": f"{min(seconds):.2f} .. {max(seconds):.2f}",
                f"ratio to {models[0]}": round(float(np.median(seconds)) / first, 2),
                "peak MB (median)": round(peak_mb),
                "imports TensorFlow": "yes" if runs[model][0][2] else "no",
            }
        )
    load = os.getloadavg()[0]
    write_results(
        args.name,
        table,
        list(table[0]),
        "Cold start: `tfiqa predict` on one photo in a fresh process",
        notes=f"{args.rounds} interleaved rounds; one-minute load average at the "
        f"end {load:.1f} on {os.cpu_count()} cores (the figures grow with it). "
        "Wall time includes starting Python, importing, loading the model, "
        "decoding and scoring the photo and writing the CSV.",
    )


if __name__ == "__main__":
    script(__file__)
