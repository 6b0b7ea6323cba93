"""The phone model under the protocol: int8 TFLite vs float, per split.

For each of `--splits` content-disjoint splits of biq2021-dev (made as in
`lite_recipe.py`), the recipe's arm `--arm` is fitted on the split's
training photos (biq2021-dev train part + biq2021-more, choices on
validation), set into an `IQAModel` as `lite_preset.py` does, and exported to
a full-integer int8 TFLite (`--variant`: `int8_io`, uint8 pixels in and a
uint8 score out, or `int8`, float in and out; calibrated on
`--calibration-count` photos of the split's biq2021-dev train part). The
split's test photos are scored by the int8 file through `tfiqa.load` and
by the float model (its cached features; the two agree to 1e-6); the table
gives each one's test SRCC and the largest |int8 - float| score difference
over the test photos.

Then, on the last split's model, LiteRT latency (1 thread, batch 1, median
of `--runs` interleaved calls) of float32 and int8 files at the policy's
input size and at 224 px, and their sizes.

Writes `results/<name>.{json,md}` and `results/<name>_latency.{json,md}`.

Example:
```
.venv/bin/python benchmarks/lite_phone.py --data-dir ../shared/data \
    --arm lite0:full/qridge3/dev+more
```
"""

import dataclasses
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, time_interleaved, write_results  # noqa: E402
from lite_preset import noise_penalty, ridge_model  # noqa: E402
from lite_recipe import (  # noqa: E402
    ALPHAS,
    BACKBONE_NAMES,
    FeatureTable,
    dev_splits,
    fit_ridge,
    read_photos,
    standardiser,
    usable_more,
)


def split_model(args, table, split, dev, more):
    """The split's float model and its test predictions (from the cache)."""
    from tfiqa.metrics import srcc

    features, head, _ = args.arm.split("/")
    backbone = BACKBONE_NAMES[features.split(":")[0]]
    parts = {"train": split["train"] + usable_more(more, split)}
    parts.update(val=split["val"], test=split["test"])
    x = {p: table.get(features, parts[p]) for p in parts}
    y = {p: np.float32([r["mos"] for r in parts[p]]) for p in parts}
    mean, std = standardiser(x["train"])
    z = {p: (x[p] - mean) / std for p in x}
    extra = noise_penalty(head, args, dev, more, std, len(z["train"]))
    fits = [fit_ridge(z["train"], y["train"], a, extra) for a in ALPHAS]
    w, b = max(fits, key=lambda f: srcc(z["val"] @ f[0] + f[1], y["val"]))
    model = ridge_model(backbone, mean, std, w, b, args.input_size)
    return model, z["test"] @ w + b, parts


def export_variants(model, folder, calibration_photos, count, input_size, quantize):
    """{variant: .tflite path} of the `quantize` exports at `input_size`."""
    from tfiqa.export import export_model

    calibration = os.path.join(folder, "calibration")
    os.makedirs(calibration, exist_ok=True)
    for i, record in enumerate(calibration_photos[:count]):
        link = os.path.join(calibration, f"{i:04d}.jpg")
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(record["image_path"]), link)
    manifest = export_model(
        model,
        folder,
        formats=("tflite",),
        quantize=quantize,
        input_size=input_size,
        calibration_dir=calibration,
        calibration_count=count,
    )
    return manifest["tflite"]


def run(args):
    import tfiqa
    from tfiqa.metrics import srcc

    out = os.path.abspath(args.out)
    dev, more = read_photos(
        os.path.abspath(args.data_dir), args.duplicate_similarity, out
    )
    table = FeatureTable(out, 224)
    work = tempfile.mkdtemp(prefix="lite_phone_")
    splits = dev_splits(dev, args.splits)
    if not args.accuracy:  # latency only, on the last split's model
        model = split_model(args, table, splits[-1], dev, more)[0]
        return latency_rows(args, model, work, splits[-1]["train"])
    rows, model = [], None
    for k, split in enumerate(splits):
        start = time.time()
        model, float_scores, parts = split_model(args, table, split, dev, more)
        files = export_variants(
            model,
            os.path.join(work, f"split{k}"),
            split["train"],
            args.calibration_count,
            args.input_size,
            (args.variant,),
        )
        paths = [r["image_path"] for r in parts["test"]]
        int8_scores = tfiqa.load(files[args.variant]).score(paths)
        mos = np.float32([r["mos"] for r in parts["test"]])
        difference = np.abs(int8_scores - float_scores)
        rows.append(
            {
                "split": f"split{k}",
                "test photos": len(paths),
                "float srcc": round(float(srcc(float_scores, mos)), 4),
                "int8 srcc": round(float(srcc(int8_scores, mos)), 4),
                "int8 - float srcc": round(
                    float(srcc(int8_scores, mos) - srcc(float_scores, mos)), 4
                ),
                "max abs(int8 - float)": round(float(difference.max()), 4),
                "p95 abs(int8 - float)": round(float(np.percentile(difference, 95)), 4),
                "photos over 0.05": int((difference > 0.05).sum()),
                "seconds": round(time.time() - start, 1),
            }
        )
        print(rows[-1], flush=True)
    medians = {
        key: float(np.median([r[key] for r in rows]))
        for key in rows[0]
        if key not in ("split",)
    }
    rows.append({"split": "median", **{k: round(v, 4) for k, v in medians.items()}})
    write_results(
        args.name,
        rows,
        list(rows[0]),
        f"Phone model: int8 TFLite vs float, test parts of biq2021-dev ({args.arm})",
        notes="Each split's model is fitted on that split's training photos only "
        "and calibrated on its biq2021-dev train part; the float scores are the "
        "cached-feature predictions (equal to the Keras model's to 1e-6). The "
        "ridge fit and the int8 conversion are deterministic: one run per split. "
        f"Command: benchmarks/lite_phone.py --arm {args.arm} --splits "
        f"{args.splits} --calibration-count {args.calibration_count}",
    )
    latency_rows(args, model, work, split["train"])


def _at_size(model, size):
    """`model` with the same weights and a `size` px input (no resize)."""
    from tfiqa.models import IQAModel

    if size == model.scoring_policy.crop_size:
        return model
    policy = dataclasses.replace(model.scoring_policy, crop_size=size, resize=0)
    config = {**model.get_config(), "scoring_policy": policy.to_dict()}
    twin = IQAModel.from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def latency_rows(args, model, work, calibration_photos):
    from tfiqa.inference.backends.tflite import tflite_predict_fn

    files = {}
    for size in sorted({args.input_size, 224}):
        exported = export_variants(
            _at_size(model, size),
            os.path.join(work, f"latency{size}"),
            calibration_photos,
            args.calibration_count,
            size,
            ("none", args.variant),
        )
        for variant, path in exported.items():
            files[(variant, size)] = path
    fns = {}
    for (variant, size), path in files.items():
        fn, _ = tflite_predict_fn(path, num_threads=1)
        image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), np.uint8)
        fns[(variant, size)] = lambda fn=fn, image=image: fn(image)
    times = time_interleaved(fns, args.runs, warmup=3)
    rows = [
        {
            "file": "float32" if variant == "none" else variant,
            "input px": size,
            "MB": round(os.path.getsize(files[(variant, size)]) / 1e6, 2),
            "median ms (1 thread)": round(1000 * float(np.median(times[key])), 2),
            "p90 ms": round(1000 * float(np.percentile(times[key], 90)), 2),
        }
        for key in sorted(files)
        for variant, size in [key]
    ]
    write_results(
        f"{args.name}_latency",
        rows,
        list(rows[0]),
        "Phone model latency: LiteRT, 1 thread, batch 1, interleaved",
        notes=f"{args.runs} interleaved rounds after 3 warm-up calls; the same "
        "model (the last split's) converted at each input size. The machine is "
        "shared: compare rows of this table, not absolute times across runs.",
    )


if __name__ == "__main__":
    script(__file__)
