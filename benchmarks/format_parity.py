"""One model, one score: `.keras`, SavedModel and TFLite through `tfiqa.load`.

Exports a model (`--model`, else the quickstart architecture, untrained) to
SavedModel and TFLite (float32, int8 calibrated on other images of the
folder) and scores `--count` real photos with each, as `tfiqa predict` does
(the model's scoring policy). Reports max |diff| and SRCC against `.keras`,
and the targets: SavedModel and float32 within 1e-5, int8 within its verify
tolerance. Writes results/format_parity.{json,md}.

    .venv/bin/python benchmarks/format_parity.py \
        --images ../shared/data/biq2021-dev/images
"""

import os
import sys
import tempfile

import numpy as np
from common import script, write_results


def run(args):
    from scipy import stats

    from tfiqa.config import builtin_config_path, load_config
    from tfiqa.data.image_io import load_image
    from tfiqa.export import export_model
    from tfiqa.export.image_folders import list_image_files
    from tfiqa.export.verify import TOLERANCES
    from tfiqa.inference import load
    from tfiqa.inference.backends.keras import load_keras_model
    from tfiqa.models import build_model

    files = list_image_files(args.images)
    scored, calibration = files[: args.count], files[args.count : args.count + 32]
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path:
            model = load_keras_model(model_path)
        else:
            config = load_config(builtin_config_path("quickstart"))
            model = build_model(config.model, crop_size=config.data.crop_size)
            model_path = os.path.join(tmp, "model.keras")
            model.save(model_path)
        calibration_dir = os.path.join(tmp, "calibration")
        os.makedirs(calibration_dir)
        for f in calibration:
            os.symlink(
                os.path.abspath(f), os.path.join(calibration_dir, os.path.basename(f))
            )
        manifest = export_model(
            model,
            os.path.join(tmp, "out"),
            quantize=["none", "int8"],
            calibration_dir=calibration_dir,
        )
        images = [load_image(f) for f in scored]
        reference = load(model_path).score(images)
        formats = {
            "saved_model": manifest["saved_model"],
            "none": manifest["tflite"]["none"],
            "int8": manifest["tflite"]["int8"],
        }
        rows = []
        for kind, path in formats.items():
            scores = load(path).score(images)
            diff = float(np.max(np.abs(scores - reference)))
            target = (
                1e-5
                if kind in ("saved_model", "none")
                else TOLERANCES[kind]["max_abs_diff"]
            )
            rows.append(
                {
                    "format": {"none": "TFLite float32", "int8": "TFLite int8"}.get(
                        kind, "SavedModel"
                    ),
                    "images": len(images),
                    "max abs diff vs .keras": float(f"{diff:.3g}"),
                    "SRCC vs .keras": round(
                        float(stats.spearmanr(scores, reference)[0]), 4
                    ),
                    "target": target,
                    "met": "yes" if diff <= target else "no",
                }
            )
    notes = (
        f"Model: {args.model or 'quickstart architecture, untrained'}; policy "
        f"{manifest['scoring']}; {len(images)} photos from {args.images} "
        f"(sizes {sorted({im.shape[:2] for im in images})[:3]}...), scored with "
        "tfiqa.load(path).score(images)."
    )
    columns = list(rows[0])
    print(write_results("format_parity", rows, columns, "Scores per format", notes))


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
