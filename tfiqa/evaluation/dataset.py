"""`evaluate_dataset`: metrics of predictions on a dataset (or one split of it)."""

import dataclasses
import glob
import json
import os

import numpy as np

from tfiqa.errors import ConfigError, DataError
from tfiqa.evaluation.matching import (
    MAX_EXAMPLES,
    Match,
    Predictions,
    _key,
    match_predictions,
    read_predictions,
)
from tfiqa.files import json_ready
from tfiqa.metrics import evaluate_with_fit


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


def predict_records(model_path, records, verbose=1, trust_model=False):
    """Scores the records' images with a model (`tfiqa.inference.load`,
    `trust_model` as there).

    Images are decoded a batch at a time; one that cannot be read is a
    failed prediction, as in `tfiqa predict`, not the end of the evaluation.
    `verbose=0` hides the progress bar (see `tfiqa.progress`).
    """
    from tfiqa import inference
    from tfiqa.progress import progress

    paths = [r["image_path"] for r in records]
    scores, failed = {}, {}
    scorer = inference.load(model_path, trust_model=trust_model)
    with progress(len(paths), "Scoring", verbose, unit="image") as bar:
        for row in scorer.score_files(paths):
            if row["error"]:
                failed[row["image"]] = row["error"]
            else:
                scores[row["image"]] = row["score"]
            bar.add(1)
    return Predictions(scores, failed, model_path)


def _examples(items):
    shown = ", ".join(repr(x) for x in items[:MAX_EXAMPLES])
    return shown + (", ..." if len(items) > MAX_EXAMPLES else "")


def _within(match, records):
    """`match` restricted to `records` (unmatched predictions stay)."""
    keys = {_key(r["image_path"]) for r in records}
    return Match(
        pairs=[p for p in match.pairs if _key(p[0]["image_path"]) in keys],
        unmatched=match.unmatched,
        missing=[r for r in match.missing if _key(r["image_path"]) in keys],
        failed=[r for r in match.failed if _key(r["image_path"]) in keys],
    )


def _notes(table, match, outside, source, kind, data_dir, n_records, split):
    """Human-readable remarks on every prediction or record left out."""
    notes = []
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
            f"{len(match.missing)} of {n_records} dataset image(s) have no "
            f"prediction, e.g. "
            f"{_examples([r['image_path'] for r in match.missing])}."
        )
    if outside:
        notes.append(
            f"Ignored {outside} prediction(s) for images outside split '{split}'."
        )
    return notes


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
    verbose=1,
    trust_model=False,
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
        verbose: int. 0 hides the progress of scoring with `model`.
        trust_model: bool. See `tfiqa.inference.load`.

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
    # Read before the dataset: a bad CSV is the cheaper error to report.
    table = read_predictions(predictions) if predictions is not None else None
    every = read_dataset(kind, data_dir, **(reader_options or {}))
    records, split_path, split_notes = every, None, []
    if split != "all":
        records, split_path, split_notes = select_split(
            every, workdir, split, split_index
        )
    table = table or predict_records(model, records, verbose, trust_model)

    # Match against the whole dataset, so that predictions for images of
    # other splits are told apart from images that are not in the dataset.
    match_all = match_predictions(table, every, data_dir)
    match = _within(match_all, records)
    outside = len(match_all.pairs) - len(match.pairs)
    source = predictions or model
    notes = split_notes + _notes(
        table, match, outside, source, kind, data_dir, len(records), split
    )
    _check_matched(match, table, source, f"dataset '{kind}' in {data_dir}", split)

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
        **_counts(every, records, table, match, outside),
        "logistic_params": None if params is None else [float(b) for b in params],
    }
    images = [record["image_path"] for record, _ in match.pairs]
    return EvaluationResult(json_ready(metrics), pred, mos, params, notes, images)


def _check_matched(match, table, source, dataset, split):
    if not table.scores and table.failed:
        image, error = next(iter(table.failed.items()))
        raise DataError(
            f"All {len(table.failed)} predictions in {source} are errors (error "
            f"column); nothing to evaluate. First: {image!r}: {error}"
        )
    if not match.pairs:
        raise DataError(
            f"No prediction in {source} matches an image of {dataset} (split "
            f"{split}). Image paths must be absolute, relative to the dataset "
            f"folder, or unique file names. Received: e.g. "
            f"{_examples(sorted(table.scores) or sorted(table.failed))}"
        )


def _counts(every, records, table, match, outside):
    return {
        "n_dataset": len(every),
        "n_records": len(records),
        "n_predictions": len(table.scores) + len(table.failed),
        "n_failed": len(table.failed),
        "n_unmatched": len(match.unmatched),
        "n_missing": len(match.missing),
        "n_outside_split": outside,
    }


def metrics_json(result):
    return json.dumps(result.metrics, indent=2, allow_nan=False)
