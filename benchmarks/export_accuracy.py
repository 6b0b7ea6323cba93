"""Accuracy of every export against MOS, next to the float Keras model.

Scores held-out biq2021-dev images (the run's own val/test splits, never the
training images) with the Keras model, the SavedModel and each TFLite variant,
and reports SRCC/PLCC against MOS plus the agreement with the float model
(SRCC between the two score lists and max |diff|). int8 variants are
calibrated on training-split images. Each image is scored as `tfiqa predict`
scores it (`tfiqa.load` on each file: the model's scoring policy, the same
for every format).

The model: `--model`, else the newest `runs/*/model.keras` or
`benchmarks/out/*/model.keras`; with none, a small one is trained first from
`configs/export_accuracy_model.yaml` (MobileNetV3-Small from scratch, a few
minutes on 2 cores).

Usage:
    .venv/bin/python benchmarks/export_accuracy.py --data-dir ../shared/data
"""

import glob
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import HERE, ROOT, script, write_results  # noqa: E402

TRAIN_CONFIG = os.path.join(ROOT, "configs", "export_accuracy_model.yaml")


def find_model(explicit, data_dir):
    if explicit:
        return explicit
    candidates = glob.glob(os.path.join(ROOT, "runs", "*", "model.keras"))
    candidates += glob.glob(os.path.join(HERE, "out", "*", "model.keras"))
    if candidates:
        return max(candidates, key=os.path.getmtime)
    from tfiqa.config import load_config
    from tfiqa.training.experiment import run_experiment

    workdir = os.path.join(HERE, "out", "biq_mnv3s")
    print(f"No trained model found; training one in {workdir}", file=sys.stderr)
    config = load_config(TRAIN_CONFIG, [f"data.root={data_dir}"])
    run_experiment(config, workdir)
    return os.path.join(workdir, "model.keras")


def held_out_records(model_path, data_dir):
    """{"train", "val", "test"} records: the run's splits when it has them."""
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import load_splits, select, split_records

    records = read_dataset("csv", os.path.join(data_dir, "biq2021-dev"))
    splits_path = os.path.join(os.path.dirname(model_path), "splits", "splits.json")
    if os.path.isfile(splits_path):
        return select(records, load_splits(splits_path)[0]), splits_path
    return split_records(records, val_ratio=0.2, test_ratio=0.2, seed=0), "seed 0"


def link_images(records, folder, count):
    """A folder of symlinks to the first `count` images (for calibration)."""
    os.makedirs(folder, exist_ok=True)
    for i, record in enumerate(records[:count]):
        ext = os.path.splitext(record["image_path"])[1]
        link = os.path.join(folder, f"{i:04d}{ext}")
        if not os.path.lexists(link):
            os.symlink(record["image_path"], link)
    return folder


def run(args):
    args.variants = args.variants.split(",")
    rows, checks, models = [], [], []
    for model_path in args.model or [find_model(None, args.data_dir)]:
        model_rows, model_checks, about = evaluate_model(model_path, args)
        rows += model_rows
        checks += model_checks
        models.append(about)
    notes = (
        "Models: "
        + "; ".join(models)
        + ". One centre crop of the model's input size per image (no resizing), "
        "the same pixels for every row. int8 calibration: "
        f"{args.calibration_count} training-split images (min/max ranges). "
        "PLCC on raw scores, and after the 4-parameter logistic mapping. "
        "'max |diff|' and 'SRCC vs float' compare with the Keras float model. "
        "No GPU was lent to this session (CPU only; accuracy does not depend "
        "on it).\n\n" + "\n".join(f"- {c}" for c in checks)
    )
    text = write_results(
        args.name,
        rows,
        list(rows[0]),
        "Export accuracy on biq2021-dev held-out splits",
        notes=notes,
    )
    print(text)


def evaluate_model(model_path, args):
    """Rows for one model, target checks, and a line describing it."""
    import numpy as np

    from tfiqa.data.image_io import load_image
    from tfiqa.export import export_model
    from tfiqa.inference import load
    from tfiqa.inference.backends.keras import load_keras_model
    from tfiqa.metrics import MetricWarning, plcc, srcc

    model = load_keras_model(model_path)
    backbone = model.backbone_name
    parts, split_source = held_out_records(model_path, args.data_dir)
    out = os.path.join(args.out, backbone)
    calibration = link_images(
        parts["train"], os.path.join(out, "calibration"), args.calibration_count
    )
    manifest = export_model(
        model,
        out,
        quantize=args.variants,
        calibration_dir=calibration,
        calibration_count=args.calibration_count,
        model_path=model_path,
        name=backbone,
    )
    backends = {"Keras float32": load(model_path)}
    backends["SavedModel"] = load(manifest["saved_model"])
    for q in args.variants:
        backends[f"TFLite {q}"] = load(manifest["tflite"][q])
    sizes = {
        f"TFLite {q}": os.path.getsize(manifest["tflite"][q]) / 1e6
        for q in args.variants
    }

    rows, checks = [], []
    for part in args.splits.split(","):
        records = parts[part]
        if not records:
            continue
        images = [load_image(r["image_path"]) for r in records]
        mos = np.array([r["mos"] for r in records])
        scores = {name: scorer.score(images) for name, scorer in backends.items()}
        float_scores = scores["Keras float32"]
        for name, pred in scores.items():
            with warnings.catch_warnings():
                warnings.simplefilter("error", MetricWarning)
                diff = np.max(np.abs(pred - float_scores))
                rows.append(
                    {
                        "backbone": backbone,
                        "split": f"{part} ({len(records)})",
                        "model": name,
                        "SRCC vs MOS": round(srcc(pred, mos), 4),
                        "PLCC vs MOS": round(plcc(pred, mos), 4),
                        "PLCC (logistic)": round(plcc(pred, mos, fit="logistic4"), 4),
                        "SRCC vs float": round(srcc(pred, float_scores), 4),
                        "max |diff|": float(f"{diff:.4f}"),
                        "size MB": round(sizes.get(name, float("nan")), 2),
                    }
                )
        float_srcc = srcc(float_scores, mos)
        for q in [q for q in ("int8", "int8_io") if q in args.variants]:
            drop = float_srcc - srcc(scores[f"TFLite {q}"], mos)
            checks.append(
                f"{backbone} {part}: {q} SRCC {drop:+.4f} below float (target "
                f"within 0.01: {'met' if abs(drop) <= 0.01 else 'missed'})"
            )
    if {"TFLite int8", "TFLite none"} <= set(sizes):
        size_ratio = sizes["TFLite int8"] / sizes["TFLite none"]
        checks.append(
            f"{backbone}: int8 file {size_ratio:.2f} of float32 (target <= 0.30: "
            f"{'met' if size_ratio <= 0.30 else 'missed'})"
        )
    test_srcc = ""
    metrics_path = os.path.join(os.path.dirname(model_path), "metrics.json")
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            test = json.load(f).get("test", {})
        if "srcc" in test:
            test_srcc = (
                f", its run's test SRCC {test['srcc']:.3f} ({test.get('eval_mode')})"
            )
    if os.path.isabs(split_source):
        split_source = os.path.relpath(split_source, ROOT)
    about = (
        f"{os.path.relpath(model_path, ROOT)} ({backbone}, "
        f"policy {manifest['scoring']}, splits "
        f"{split_source}{test_srcc})"
    )
    return rows, checks, about


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
