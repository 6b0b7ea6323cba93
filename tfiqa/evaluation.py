"""Evaluating predicted scores against a dataset's MOS: matching, metrics, plot.

A predictions CSV has the columns `image,score` and optionally `error` (what
`tfiqa predict` writes); a row with a non-empty `error` is an image that could
not be scored. Predictions are matched to dataset records by image path:
absolute, relative to the dataset folder (or the current folder), or a bare
file name when exactly one record has that name. Nothing is dropped silently:
failed, unmatched and missing images are counted in the result and described
in its `notes`.

Example:
```python
result = evaluate_dataset("csv", "data/biq2021-dev", predictions="pred.csv")
write_outputs(result, "runs/eval")   # metrics.json, scatter.png
```
"""

import csv
import dataclasses
import glob
import io
import json
import math
import os

import numpy as np

from tfiqa.errors import ConfigError, DataError
from tfiqa.files import atomic_path, write_json_atomic, write_text_atomic
from tfiqa.metrics import evaluate_with_fit, logistic4

MAX_EXAMPLES = 3


@dataclasses.dataclass
class Predictions:
    """Rows of a predictions CSV.

    Attributes:
        scores: dict image (as written in the CSV) -> float score.
        failed: dict image -> error message, for rows that could not be scored.
        path: str, the CSV file.
    """

    scores: dict
    failed: dict
    path: str = ""


@dataclasses.dataclass
class Match:
    """Predictions paired with records.

    Attributes:
        pairs: list of (record, score) for matched images, in record order.
        unmatched: list of (image, reason) for predictions matching no record.
        missing: list of records without a prediction (failed ones excluded).
        failed: list of records whose prediction row has an error.
    """

    pairs: list
    unmatched: list
    missing: list
    failed: list


@dataclasses.dataclass
class EvaluationResult:
    """What `evaluate_dataset` found.

    Attributes:
        metrics: dict, JSON-ready (NaN written as null): the metrics of
            `evaluate_predictions` plus counts and provenance.
        pred: np.ndarray (n,), matched predictions.
        mos: np.ndarray (n,), their MOS in [0, 1].
        params: np.ndarray [b1, b2, b3, b4] of the logistic, or None.
        notes: list of str, human-readable remarks on dropped rows.
        images: list of str, the matched images' paths, in `pred` order.
    """

    metrics: dict
    pred: np.ndarray
    mos: np.ndarray
    params: object
    notes: list
    images: list = dataclasses.field(default_factory=list)


def read_predictions(path):
    """Reads a predictions CSV (`image,score[,error]`).

    Raises:
        DataError: missing file, missing columns, a bad or non-finite score,
            or an image listed twice.
    """
    if not os.path.isfile(path):
        raise DataError(f"Predictions CSV not found. Received: {path}")
    try:
        return _read_predictions(path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"Predictions CSV {path} is not a readable UTF-8 CSV. Received: {e}"
        ) from None


def _read_predictions(path):
    scores, failed = {}, {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        for needed in ("image", "score"):
            if needed not in columns:
                raise DataError(
                    f"Predictions CSV {path} has no '{needed}' column (expected "
                    f"image,score[,error]). Received: columns={columns}"
                )
        # Line numbers count the header as line 1, as editors show.
        for line, row in enumerate(reader, start=2):
            image = (row.get("image") or "").strip()
            if not image:
                raise DataError(f"Predictions CSV {path}, line {line}: empty image.")
            if image in scores or image in failed:
                raise DataError(
                    f"Predictions CSV {path}, line {line}: image listed twice. "
                    f"Received: image={image!r}"
                )
            error = (row.get("error") or "").strip()
            if error:
                failed[image] = error
                continue
            text = (row.get("score") or "").strip()
            try:
                score = float(text)
            except ValueError:
                score = math.nan
            if not math.isfinite(score):
                raise DataError(
                    f"Predictions CSV {path}, line {line}: score must be a finite "
                    f"number (or fill the error column). Received: score={text!r} "
                    f"for image={image!r}"
                )
            scores[image] = score
    return Predictions(scores, failed, path)


def _key(path):
    return os.path.normcase(os.path.realpath(path))


def _is_bare_name(image):
    return os.path.basename(image) == image and "/" not in image


def match_predictions(predictions, records, data_dir):
    """Pairs predictions with records by image path.

    Args:
        predictions: `Predictions`.
        records: list of record dicts (absolute `image_path`).
        data_dir: str, the dataset folder relative paths resolve against.

    Returns:
        `Match`.

    Raises:
        DataError: two prediction rows name the same record, or the dataset
            lists one image twice (its MOS would be ambiguous).
    """
    by_path = {}
    for i, record in enumerate(records):
        key = _key(record["image_path"])
        if key in by_path:
            raise DataError(
                "The dataset lists an image twice (which MOS is meant?). "
                f"Received: {record['image_path']}"
            )
        by_path[key] = i
    by_name = {}
    for i, record in enumerate(records):
        by_name.setdefault(os.path.basename(record["image_path"]), []).append(i)

    def locate(image):
        if os.path.isabs(image):
            candidates = [image]
        else:
            candidates = [os.path.join(data_dir, image), os.path.abspath(image)]
        for candidate in candidates:
            index = by_path.get(_key(candidate))
            if index is not None:
                return index, None
        if _is_bare_name(image):
            hits = by_name.get(image, [])
            if len(hits) == 1:
                return hits[0], None
            if hits:
                return None, f"file name shared by {len(hits)} records"
        return None, "no record with this path"

    taken = {}  # record index -> image as written
    score_of, failed_rows = {}, set()
    unmatched = []
    rows = [(image, score, False) for image, score in predictions.scores.items()]
    rows += [(image, None, True) for image in predictions.failed]
    for image, score, is_failed in rows:
        index, reason = locate(image)
        if index is None:
            unmatched.append((image, reason))
            continue
        if index in taken:
            raise DataError(
                f"Predictions CSV {predictions.path}: {taken[index]!r} and "
                f"{image!r} are the same image. Received: "
                f"{records[index]['image_path']}"
            )
        taken[index] = image
        if is_failed:
            failed_rows.add(index)
        else:
            score_of[index] = score
    pairs = [(r, score_of[i]) for i, r in enumerate(records) if i in score_of]
    missing = [r for i, r in enumerate(records) if i not in taken]
    failed = [r for i, r in enumerate(records) if i in failed_rows]
    return Match(pairs, unmatched, missing, failed)


def split_file(workdir):
    """The splits JSON a run wrote: `<workdir>/splits/splits.json`."""
    path = os.path.join(workdir, "splits", "splits.json")
    if os.path.isfile(path):
        return path
    others = sorted(glob.glob(os.path.join(workdir, "splits", "*.json")))
    if len(others) == 1:
        return others[0]
    raise DataError(
        f"No splits file at {path}; train with this workdir first, or use "
        f"--split all. Received: workdir={workdir}, other JSON files: {others}"
    )


def select_split(records, workdir, split, index=0):
    """The records of split `split` ("train"/"val"/"test") saved in `workdir`.

    Args:
        records: list of record dicts of the whole dataset.
        workdir: str, run directory holding `splits/splits.json` (a list of
            splits, see `tfiqa.data.splits.save_splits`).
        split: str, "train", "val" or "test".
        index: int, which of the saved splits (`data.split_index`).

    Returns:
        (records in the split, path of the splits file, notes).
    """
    from tfiqa.data.splits import load_splits, load_splits_meta

    if not workdir:
        raise ConfigError(
            f"--split {split} needs --workdir (the run directory holding "
            "splits/). Received: workdir=None"
        )
    path = split_file(workdir)
    splits = load_splits(path)
    if not 0 <= index < len(splits):
        raise ConfigError(
            f"data.split_index must be in [0, {len(splits) - 1}] for the "
            f"{len(splits)} split(s) in {path}. Received: split_index={index}"
        )
    chosen = splits[index]
    if split not in chosen or not isinstance(chosen[split], list):
        parts = [k for k, v in chosen.items() if isinstance(v, list)]
        raise ConfigError(
            f"Split '{split}' not in {path}; it has {parts}. Received: split={split!r}"
        )
    notes = []
    used = len(splits) > 1 and load_splits_meta(path).get("split_index")
    if used not in (False, None, index):
        notes.append(
            f"Evaluating split {index} of {path}, but the run used split {used} "
            "(set --set data.split_index=N)."
        )
    wanted = {_key(p) for p in chosen[split]}
    selected = [r for r in records if _key(r["image_path"]) in wanted]
    if not wanted:
        raise DataError(f"Split '{split}' (index {index}) in {path} is empty.")
    if len(selected) < len(wanted):
        raise DataError(
            f"{len(wanted) - len(selected)} of {len(wanted)} images of split "
            f"'{split}' in {path} are not in the dataset (was it moved, or is this "
            f"another dataset's split file?). Received: {len(records)} records"
        )
    return selected, path, notes


def predict_records(model_path, records):
    """Scores the records' images with a model (`tfiqa.inference.load`).

    Images are decoded a batch at a time; one that cannot be read is a
    failed prediction, as in `tfiqa predict`, not the end of the evaluation.
    """
    from tfiqa import inference

    paths = [r["image_path"] for r in records]
    scores, failed = {}, {}
    for row in inference.load(model_path).score_files(paths):
        if row["error"]:
            failed[row["image"]] = row["error"]
        else:
            scores[row["image"]] = row["score"]
    return Predictions(scores, failed, model_path)


def _examples(items):
    shown = ", ".join(repr(x) for x in items[:MAX_EXAMPLES])
    return shown + (", ..." if len(items) > MAX_EXAMPLES else "")


def evaluate_dataset(
    kind,
    data_dir,
    predictions=None,
    model=None,
    split="all",
    workdir=None,
    split_index=0,
    reader_options=None,
    fit="logistic4",
):
    """Metrics of predictions (a CSV, or a model run now) on a dataset.

    Args:
        kind: str, dataset reader kind ("csv", "koniq10k", ...).
        data_dir: str, the dataset folder.
        predictions: str, path of a predictions CSV; or
        model: str, a model path to score the images with first.
        split: "all" or a split name of `workdir`'s saved splits.
        workdir: str or None, run directory holding `splits/`.
        split_index: int, which split file when there are several.
        reader_options: dict of options for the dataset reader.
        fit: "logistic4" or None (see `tfiqa.metrics.evaluate_predictions`).

    Returns:
        `EvaluationResult`.

    Raises:
        TfiqaError: bad input; no prediction matches the dataset.
    """
    from tfiqa.data.readers import read_dataset

    if (predictions is None) == (model is None):
        raise ConfigError(
            "Give exactly one of --predictions (a CSV) or --model. Received: "
            f"predictions={predictions!r}, model={model!r}"
        )
    if predictions is not None:
        # Read before the dataset: a bad CSV is the cheaper error to report.
        table = read_predictions(predictions)
    every = read_dataset(kind, data_dir, **(reader_options or {}))
    records, split_path, split_notes = every, None, []
    if split != "all":
        records, split_path, split_notes = select_split(
            every, workdir, split, split_index
        )
    if model is not None:
        table = predict_records(model, records)

    # Match against the whole dataset, so that predictions for images of
    # other splits are told apart from images that are not in the dataset.
    match_all = match_predictions(table, every, data_dir)
    in_split = {_key(r["image_path"]) for r in records}
    match = Match(
        pairs=[p for p in match_all.pairs if _key(p[0]["image_path"]) in in_split],
        unmatched=match_all.unmatched,
        missing=[r for r in match_all.missing if _key(r["image_path"]) in in_split],
        failed=[r for r in match_all.failed if _key(r["image_path"]) in in_split],
    )
    outside = len(match_all.pairs) - len(match.pairs)

    notes = list(split_notes)
    source = predictions or model
    if table.failed:
        notes.append(
            f"Excluded {len(table.failed)} image(s) whose prediction failed "
            f"(error column), e.g. {_examples(sorted(table.failed))}."
        )
    if match.unmatched:
        notes.append(
            f"{len(match.unmatched)} prediction(s) in {source} match no image of "
            f"dataset '{kind}' in {data_dir}, e.g. "
            + "; ".join(f"{im!r} ({why})" for im, why in match.unmatched[:MAX_EXAMPLES])
            + "."
        )
    if match.missing:
        notes.append(
            f"{len(match.missing)} of {len(records)} dataset image(s) have no "
            f"prediction, e.g. "
            f"{_examples([r['image_path'] for r in match.missing])}."
        )
    if outside:
        notes.append(
            f"Ignored {outside} prediction(s) for images outside split '{split}'."
        )
    if not match.pairs:
        raise DataError(
            f"No prediction in {source} matches an image of dataset '{kind}' in "
            f"{data_dir} (split {split}). Image paths must be absolute, relative to "
            f"the dataset folder, or unique file names. Received: e.g. "
            f"{_examples(sorted(table.scores) or sorted(table.failed))}"
        )

    pred = np.array([score for _, score in match.pairs])
    mos = np.array([record["mos"] for record, _ in match.pairs])
    scores, params = evaluate_with_fit(pred, mos, fit)
    metrics = {
        **scores,
        "dataset": kind,
        "data_dir": os.path.abspath(data_dir),
        "split": split,
        "split_file": split_path,
        "predictions": os.path.abspath(predictions) if predictions else None,
        "model": model,
        "n_dataset": len(every),
        "n_records": len(records),
        "n_predictions": len(table.scores) + len(table.failed),
        "n_failed": len(table.failed),
        "n_unmatched": len(match.unmatched),
        "n_missing": len(match.missing),
        "n_outside_split": outside,
        "logistic_params": None if params is None else [float(b) for b in params],
    }
    images = [record["image_path"] for record, _ in match.pairs]
    return EvaluationResult(_json_ready(metrics), pred, mos, params, notes, images)


def _json_ready(obj):
    """NaN/inf become None: JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def metrics_json(result):
    return json.dumps(result.metrics, indent=2, allow_nan=False)


def write_outputs(result, output_dir, predictions_csv=False):
    """Writes `metrics.json` and `scatter.png` (and `predictions.csv` if asked).

    Returns:
        dict name -> path written.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "metrics": os.path.join(output_dir, "metrics.json"),
        "scatter": os.path.join(output_dir, "scatter.png"),
    }
    write_json_atomic(paths["metrics"], result.metrics)
    save_scatter_plot(paths["scatter"], result)
    if predictions_csv:
        paths["predictions"] = os.path.join(output_dir, "predictions.csv")
        write_predictions_csv(paths["predictions"], result)
    return paths


def write_predictions_csv(path, result):
    """Writes the matched `image,score,mos` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", "score", "mos"])
    for image, p, m in zip(result.images, result.pred, result.mos, strict=True):
        writer.writerow([image, f"{p:.6f}", f"{m:.6f}"])
    write_text_atomic(path, buffer.getvalue())


def _title_number(value):
    return "n/a" if value is None else f"{value:.3f}"


def save_scatter_plot(path, result):
    """Prediction vs MOS scatter with the fitted logistic, written atomically.

    Uses matplotlib's Agg canvas directly, so no display and no global
    backend change are needed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = result.metrics
    fig = Figure(figsize=(6.4, 5.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    n = len(result.pred)
    ax.scatter(
        result.pred,
        result.mos,
        s=max(6, min(30, 6000 / max(n, 1))),
        alpha=0.45 if n > 200 else 0.8,
        color="tab:blue",
        edgecolors="none",
        label=f"images (n={n})",
    )
    if result.params is not None:
        lo, hi = float(np.min(result.pred)), float(np.max(result.pred))
        x = np.linspace(lo, hi, 300)
        ax.plot(
            x,
            logistic4(x, *result.params),
            color="tab:red",
            linewidth=2,
            label="4-parameter logistic fit",
        )
    elif m.get("fit") == "failed":
        ax.text(
            0.02,
            0.98,
            "logistic fit failed",
            transform=ax.transAxes,
            va="top",
            color="tab:red",
        )
    name = os.path.basename(os.path.normpath(m.get("data_dir") or "")) or "dataset"
    split = "" if m.get("split") in (None, "all") else f", {m['split']} split"
    ax.set_title(
        f"{name} ({m.get('dataset', '?')}{split}): "
        f"SRCC {_title_number(m.get('srcc'))}, PLCC {_title_number(m.get('plcc'))}",
        fontsize=11,
    )
    ax.set_xlabel("Predicted score")
    ax.set_ylabel("MOS (normalised to [0, 1], higher is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
