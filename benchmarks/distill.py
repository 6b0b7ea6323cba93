"""The mobile preset: a small student distilled from the pretrained teacher.

On one content-disjoint split of biq2021-dev (`--split-file`, e.g. the
transfer benchmark's `split0.json`):
1. the teacher (a preset name or `.keras`) scores unlabelled images: every
   photo of `pristine/` and synthetic distortions of `--distort-count` of
   them (`--types` x `--levels`), one centre crop each;
2. the distilled student trains on the split's labelled training photos
   (their MOS) plus those teacher scores; the MOS-only student trains on the
   labelled photos alone, for the same number of steps (equal budget);
3. both students are exported (float and int8 TFLite) and every model,
   the teacher included, scores the split's test photos under its policy.
Writes `benchmarks/results/<--name>.{json,md}`: test SRCC/PLCC with
bootstrap 95% intervals over test photos, size, and the budget of each arm.
Training data of the student: the split's train part only; validation
(model selection) on its val part; test photos are scored once.

Example:
```
.venv/bin/python benchmarks/distill.py --data-dir ../shared/data \
    --teacher lite0-biq --split-file benchmarks/out/transfer/splits/split0.json
```
"""

import csv
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, script, write_results  # noqa: E402

STUDENT_CONFIG = os.path.join(ROOT, "configs", "presets", "mobile-mnv3s.yaml")


def unlabelled_images(data_dir, out, count, types, levels, seed=0):
    """Pristine photos plus distortions of `count` of them; returns paths."""
    from tfiqa.data.pristine import list_images
    from tfiqa.distortions.writer import distort_folder

    pristine = list_images(os.path.join(data_dir, "pristine"))
    chosen = np.random.default_rng(seed).choice(len(pristine), count, replace=False)
    sources = os.path.join(out, "distort_sources")
    os.makedirs(sources, exist_ok=True)
    for i in sorted(chosen):
        link = os.path.join(sources, f"{i:04d}{os.path.splitext(pristine[i])[1]}")
        if not os.path.lexists(link):
            os.symlink(pristine[i], link)
    distorted = os.path.join(out, "distorted")
    index = os.path.join(distorted, "distortions.csv")
    if not os.path.isfile(index):
        distort_folder(sources, distorted, types=types, levels=levels, seed=seed)
    with open(index, newline="") as f:
        made = [os.path.join(distorted, row["image"]) for row in csv.DictReader(f)]
    return list(pristine) + made


def teacher_scores(teacher, paths, out):
    """{path: score} of the teacher on one centre crop per image (cached)."""
    import tfiqa

    cache = os.path.join(out, "teacher_scores.json")
    scores = {}
    if os.path.isfile(cache):
        with open(cache) as f:
            scores = json.load(f)
    todo = [p for p in paths if p not in scores]
    if todo:
        scorer = tfiqa.load(teacher)
        for row in scorer.score_files(todo, crops=1):
            if row["score"] is not None:
                scores[row["image"]] = float(row["score"])
        from tfiqa.files import write_json_atomic

        write_json_atomic(cache, scores)
    return scores


def write_dataset(out, name, rows, parts):
    """A CSV (absolute image paths) and its split file; returns the folder."""
    from tfiqa.files import write_json_atomic, write_text_atomic

    folder = os.path.join(out, name)
    lines = ["image,mos"] + [f'"{path}",{score:.6f}' for path, score in rows]
    write_text_atomic(os.path.join(folder, "mos.csv"), "\n".join(lines) + "\n")
    write_json_atomic(os.path.join(folder, "split.json"), parts)
    return folder


def train_student(out, name, folder, data_dir, steps, epochs, seed):
    from tfiqa.config import load_config
    from tfiqa.training.run import run_experiment

    config = load_config(
        STUDENT_CONFIG,
        [
            f"data.dataset_dir={folder}",
            f"data.split_file={os.path.join(folder, 'split.json')}",
            "data.reader_options={file: mos.csv, group_duplicates: false}",
            f"stages.finetune.schedule.steps_per_epoch={steps}",
            f"stages.finetune.schedule.epochs={epochs}",
            f"runtime.seed={seed}",
            "runtime.verbose=0",
        ],
    )
    workdir = os.path.join(out, "runs", name)
    start = time.time()
    metrics = run_experiment(config, workdir)
    return os.path.join(workdir, "model.keras"), metrics, time.time() - start


def bootstrap(pred, mos, resamples=1000, seed=0):
    from tfiqa.metrics import srcc

    rng = np.random.default_rng(seed)
    n = len(mos)
    values = [srcc(pred[idx], mos[idx]) for idx in rng.integers(0, n, (resamples, n))]
    low, high = np.percentile(values, [2.5, 97.5])
    return f"[{low:.3f}, {high:.3f}]"


def score_test(model, paths, mos):
    import tfiqa
    from tfiqa.metrics import evaluate_predictions

    scorer = tfiqa.load(model)
    rows = list(scorer.score_files(paths))
    pred = np.array([r["score"] for r in rows], np.float64)
    metrics = evaluate_predictions(pred, mos)
    return {
        "srcc": float(metrics["srcc"]),
        "plcc": float(metrics["plcc"]),
        "srcc_95ci": bootstrap(pred, mos),
    }


def run(args):
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import split_from_file
    from tfiqa.export import export_model
    from tfiqa.inference.backends.keras import load_keras_model

    data_dir, out = os.path.abspath(args.data_dir), os.path.abspath(args.out)
    records = read_dataset("csv", os.path.join(data_dir, "biq2021-dev"), file="mos.csv")
    parts = split_from_file(records, args.split_file)
    labelled = [(r["image_path"], r["mos"]) for r in parts["train"]]
    held = {p: [(r["image_path"], r["mos"]) for r in parts[p]] for p in ("val", "test")}
    wanted = args.arms.split(",")
    pseudo, teacher_s = [], 0.0
    if "student_distilled" in wanted:
        extra = unlabelled_images(
            data_dir,
            out,
            args.distort_count,
            args.types.split(","),
            [int(v) for v in args.levels.split(",")],
        )
        start = time.time()
        teacher = teacher_scores(args.teacher, extra, out)
        teacher_s = time.time() - start
        pseudo = [(p, teacher[p]) for p in extra if p in teacher]

    def split_of(train_rows):
        return {
            "train": [p for p, _ in train_rows],
            "val": [p for p, _ in held["val"]],
            "test": [p for p, _ in held["test"]],
        }

    arms = {
        name: rows
        for name, rows in (
            ("student_mos_only", labelled),
            ("student_distilled", labelled + pseudo),
        )
        if name in wanted
    }
    test_paths = [p for p, _ in held["test"]]
    test_mos = np.array([m for _, m in held["test"]], np.float64)
    rows_path = os.path.join(out, f"{args.name}_rows.json")
    rows = []
    if os.path.isfile(rows_path):
        with open(rows_path) as f:
            rows = json.load(f)
    if args.teacher and not any(r["model"] == "teacher" for r in rows):
        rows.append(
            {"model": "teacher", **score_test(args.teacher, test_paths, test_mos)}
        )
    for name, train_rows in arms.items():
        if any(r["model"].startswith(f"{name} (") for r in rows):
            continue  # done in an earlier invocation
        folder = write_dataset(
            out, name, train_rows + held["val"] + held["test"], split_of(train_rows)
        )
        model_path, metrics, train_s = train_student(
            out, name, folder, data_dir, args.steps, args.epochs, args.seed
        )
        manifest = export_model(
            load_keras_model(model_path),
            os.path.join(out, "export", name),
            formats=["tflite"],
            quantize=["none", "int8"],
            calibration_dir=os.path.join(data_dir, "pristine", "Kodak24"),
            model_path=model_path,
            name=name,
        )
        for label, path in (
            ("keras", model_path),
            ("tflite float32", manifest["tflite"]["none"]),
            ("tflite int8", manifest["tflite"]["int8"]),
        ):
            rows.append(
                {
                    "model": f"{name} ({label})",
                    **score_test(path, test_paths, test_mos),
                    "train_images": len(train_rows),
                    "steps": args.steps * args.epochs,
                    "train_s": round(train_s, 1),
                    "size_mb": round(os.path.getsize(path) / 1e6, 3),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            from tfiqa.files import write_json_atomic

            write_json_atomic(rows_path, rows)
    notes = (
        f"One split ({os.path.basename(args.split_file)}) of biq2021-dev: "
        f"{len(labelled)} labelled training photos, {len(pseudo)} teacher-scored "
        f"images ({args.distort_count} pristine photos x {args.types} x levels "
        f"{args.levels} plus all of pristine/; teacher scoring took "
        f"{teacher_s:.0f} s), {len(test_paths)} test photos. Equal student "
        f"budgets: {args.epochs} x {args.steps} steps. 95% intervals: bootstrap "
        "over test photos. One split and one seed only: not the >= 5 splits x "
        "2 seeds protocol."
    )
    print(
        write_results(
            args.name,
            rows,
            ["model", "srcc", "srcc_95ci", "plcc", "train_images", "steps", "size_mb"],
            "Mobile student distilled from the pretrained teacher, biq2021-dev test",
            notes,
        )
    )


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
