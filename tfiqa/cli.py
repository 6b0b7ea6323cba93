"""The `tfiqa` command line: a thin layer over the library.

TensorFlow is imported inside commands so that `tfiqa --help` is instant.
Problems a user can fix (`TfiqaError`) exit with status 2 and one line.
"""

import functools
import os
import signal
import sys

import click

from tfiqa.errors import TfiqaError

EXIT_USER_ERROR = 2


class UserError(click.ClickException):
    exit_code = EXIT_USER_ERROR


def user_errors(command):
    """Turns `TfiqaError` (and click's file errors) into a one-line exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TfiqaError as e:
            raise UserError(str(e)) from None

    return wrapper


def config_options(command):
    """The options shared by commands that read an experiment config."""
    command = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config value, e.g. --set finetune.epochs=5 (YAML value).",
    )(command)
    command = click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        help="Root folder that relative data paths in the config resolve against.",
    )(command)
    command = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="Experiment YAML (only differences from defaults).",
    )(command)
    return command


def load_experiment_config(config_path, overrides, data_dir, default="quickstart"):
    from tfiqa import config as config_lib

    path = config_path or config_lib.builtin_config_path(default)
    if data_dir:
        overrides = (f"data.root={data_dir}", *overrides)
    return config_lib.load_config(path, overrides)


def not_implemented(name):
    raise UserError(f"'tfiqa {name}' is not implemented yet.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfiqa")
def cli():
    """tfiqa: no-reference image quality assessment for TensorFlow/Keras."""


@cli.command()
@config_options
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default="runs/quickstart",
    show_default=True,
    help="Run directory: config, checkpoints, logs, splits, model, metrics. "
    "Running again with the same directory resumes.",
)
@user_errors
def train(config_path, data_dir, overrides, workdir):
    """Train a quality model (stages: rank, meta, finetune).

    With no --config this runs the embedded quickstart: tiny scale, no
    downloads, no data folder needed.
    """
    config = load_experiment_config(config_path, overrides, data_dir)

    from tfiqa.training.run import format_summary, run_experiment

    click.echo(f"Training in {workdir} (stages: {', '.join(config.trainer.stages)})")
    metrics = run_experiment(config, workdir)
    click.echo("")
    click.echo(format_summary(metrics))
    click.echo(f"\nModel: {metrics['model']}")
    click.echo(f"Metrics: {os.path.join(metrics['workdir'], 'metrics.json')}")


@cli.command()
@click.option(
    "--model", "model_path", required=True, help=".keras, SavedModel dir or .tflite."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="CSV to write (image,score,error).",
)
@click.option("--crops", type=int, default=None, help="Average N deterministic crops.")
@click.option("--full", is_flag=True, help="Score each whole image at its own size.")
@click.argument("inputs", nargs=-1, required=True)
@user_errors
def predict(model_path, output, crops, full, inputs):
    """Score images (files or folders) with a trained model.

    Writes CSV rows image,score,error (to --output, or to stdout); an image
    that cannot be read gets its message in the error column and the others
    are still scored. Scores are higher-is-better (0..1 for sigmoid models).
    Default: the average of 5 deterministic crops of the model's crop size.
    """
    if crops is not None and full:
        raise UserError("--crops and --full are mutually exclusive; pass one.")
    if crops is not None and crops < 1:
        raise UserError(f"--crops must be a positive integer. Received: {crops}")
    from tfiqa.inference import load
    from tfiqa.inference.predict import (
        echo_csv,
        expand_inputs,
        predict_files,
        predict_resumable,
    )

    paths = expand_inputs(inputs)
    scorer = load(model_path)

    def run(todo, sink=None):
        if len(todo) <= 10:
            return predict_files(scorer, todo, crops, full, sink=sink)
        with click.progressbar(
            length=len(todo), label="Scoring", file=sys.stderr
        ) as bar:
            return predict_files(
                scorer, todo, crops, full, on_progress=bar.update, sink=sink
            )

    if output:
        rows = predict_resumable(
            output, paths, run, log=lambda message: click.echo(message, err=True)
        )
    else:
        rows = run(paths)
        echo_csv(rows)
    failed = sum(1 for row in rows if row["error"])
    destination = f" -> {output}" if output else ""
    click.echo(
        f"Scored {len(rows) - failed} of {len(rows)} images{destination}"
        + (f"; {failed} failed (see the error column)." if failed else "."),
        err=True,
    )
    if failed == len(rows):
        raise UserError("No image could be scored; see the error column.")


@cli.command()
@config_options
@click.option(
    "--predictions", type=click.Path(dir_okay=False), help="CSV with image,score."
)
@click.option("--model", "model_path", help="Model to predict with before evaluating.")
@click.option(
    "--dataset", required=True, help="Dataset reader kind, e.g. csv, koniq10k."
)
@click.option(
    "--split",
    default="all",
    show_default=True,
    help="all, or a split name (train/val/test) of --workdir's splits.",
)
@click.option(
    "--workdir", type=click.Path(file_okay=False), help="Run directory holding splits/."
)
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where metrics.json and the scatter plot go.",
)
@user_errors
def evaluate(
    config_path,
    data_dir,
    overrides,
    predictions,
    model_path,
    dataset,
    split,
    workdir,
    output,
):
    """Compute SRCC/PLCC/KRCC/RMSE of predictions against a dataset's MOS.

    Matches the predictions CSV (image,score[,error]) to the dataset's images
    by path (absolute, relative to --data-dir, or unique file name), prints
    the metrics as JSON and writes metrics.json and scatter.png to --output.
    PLCC and RMSE are computed after a 4-parameter logistic fit.

    --data-dir is the dataset's folder (default: data.dataset_dir of --config,
    or of --workdir's config.yaml). --model scores the images first and also
    writes predictions.csv.
    """

    from tfiqa import evaluation

    workdir_config = os.path.join(workdir or "", "config.yaml")
    if config_path is None and workdir and os.path.isfile(workdir_config):
        config_path = workdir_config
    config = load_experiment_config(config_path, overrides, data_dir)
    dataset_dir = data_dir or config.resolve_path(config.data.dataset_dir)
    if not dataset_dir:
        raise UserError(
            "--data-dir (the dataset folder) is required. Received: no --data-dir"
        )
    same_dataset = config.data.dataset == dataset
    result = evaluation.evaluate_dataset(
        dataset,
        dataset_dir,
        predictions=predictions,
        model=model_path,
        split=split,
        workdir=workdir,
        split_index=config.data.split_index,
        reader_options=config.data.reader_options if same_dataset else {},
    )
    for note in result.notes:
        click.echo(f"Warning: {note}", err=True)
    paths = evaluation.write_outputs(
        result, output, predictions_csv=model_path is not None
    )
    click.echo(evaluation.metrics_json(result))
    click.echo(f"Wrote {', '.join(paths.values())}", err=True)


def export_choices(config, export_format, quantize, calibration_dir):
    """(formats, TFLite variants): the command line's, else the config's.

    Config defaults that need calibration images are dropped with a warning
    when there is no --calibration-dir; asked for on the command line they
    stay and fail with a clear error.
    """
    if export_format is None:
        formats = list(config.formats)
    elif export_format == "all":
        formats = ["saved_model", "tflite"]
    else:
        formats = [export_format]
    if quantize is not None:
        return formats, [q.strip() for q in quantize.split(",") if q.strip()]
    if "tflite" not in formats:
        return formats, ["none"]  # export.quantize applies to TFLite only
    from tfiqa.export.tflite import CALIBRATED

    variants = list(config.quantize)
    if calibration_dir is None:
        skipped = [q for q in variants if q in CALIBRATED]
        if skipped:
            click.echo(
                f"Warning: export.quantize lists {skipped}, which need "
                "--calibration-dir; exporting without them.",
                err=True,
            )
            variants = [q for q in variants if q not in skipped]
    return formats, variants


@cli.command()
@config_options
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False))
@click.option("--output", required=True, type=click.Path(file_okay=False))
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["saved_model", "tflite", "all"]),
    help="Default: export.formats of the config.",
)
@click.option(
    "--quantize",
    help="Comma list of none,fp16,dynamic,int8,int8_io. Default: "
    "export.quantize of the config (int8 variants need --calibration-dir).",
)
@click.option(
    "--calibration-dir",
    type=click.Path(file_okay=False),
    help="Images for int8 calibration.",
)
@click.option(
    "--verify-dir",
    type=click.Path(file_okay=False),
    help="Score these images with every export and compare.",
)
@click.option(
    "--preset",
    "preset_name",
    help="Also package the model and its TFLite files as this preset "
    "(OUTPUT/presets/NAME, see tfiqa/presets/).",
)
@user_errors
def export(
    config_path,
    data_dir,
    overrides,
    model_path,
    output,
    export_format,
    quantize,
    calibration_dir,
    verify_dir,
    preset_name,
):
    """Export a model to a TF Serving SavedModel and/or TFLite.

    Settings not given on the command line come from the `export` section
    of --config, else of the config.yaml next to --model (its training run),
    else of the defaults.
    """

    run_config = os.path.join(
        os.path.dirname(os.path.abspath(model_path)), "config.yaml"
    )
    if config_path is None and os.path.isfile(run_config):
        config_path = run_config
    config = load_experiment_config(config_path, overrides, data_dir).export
    formats, variants = export_choices(config, export_format, quantize, calibration_dir)

    from tfiqa.export import export_model, load_keras_model

    model = load_keras_model(model_path)
    manifest = export_model(
        model,
        output,
        formats=formats,
        quantize=variants,
        input_size=config.input_size,
        name=config.name,
        version=config.version,
        calibration_dir=calibration_dir,
        calibration_count=config.calibration_images,
        verify_dir=verify_dir,
        model_path=model_path,
        serving_base_path=config.serving_base_path,
        log=click.echo,
    )
    if manifest["saved_model"]:
        click.echo(f"SavedModel: {manifest['saved_model']}")
        click.echo(f"TF Serving config: {manifest['models_config']}")
    for path in manifest["tflite"].values():
        click.echo(f"TFLite: {path}")
    if preset_name:
        from tfiqa.presets.build import write_preset

        folder = os.path.join(output, "presets", preset_name)
        write_preset(model, model_path, folder, preset_name, manifest)
        click.echo(f"Preset: {folder}")


@cli.command()
@click.option("--input", "input_dir", required=True, type=click.Path(file_okay=False))
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--distortion-set",
    default="kadid",
    show_default=True,
    help="kadid (25 types) or live (4 types).",
)
@click.option(
    "--types",
    default="",
    help="Comma list of distortion types (default: all in the set).",
)
@click.option(
    "--levels", default="1-5", show_default=True, help="Levels, e.g. 1-5 or 1,3,5."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--pseudo-mos", is_flag=True, help="Add a full-reference pseudo-MOS column."
)
@click.option(
    "--preview",
    type=click.Path(dir_okay=False),
    help="Write a types x levels contact sheet PNG.",
)
@user_errors
def distort(
    input_dir, output_dir, distortion_set, types, levels, seed, pseudo_mos, preview
):
    """Write synthetically distorted copies of pristine images (KADID-style).

    Output: refs/*.png, images/*.png and distortions.csv (written last).
    """
    from tfiqa.distortions.writer import distort_folder, parse_levels

    def progress(total):
        return click.progressbar(length=total, label="Distorting", file=sys.stderr)

    result = distort_folder(
        input_dir,
        output_dir,
        distortion_set=distortion_set,
        types=[t.strip() for t in types.split(",") if t.strip()],
        levels=parse_levels(levels),
        seed=seed,
        pseudo_mos=pseudo_mos,
        preview=preview,
        progress=progress,
    )
    click.echo(f"Wrote {result['images']} distorted images and {result['csv']}")
    if result["preview"]:
        click.echo(f"Contact sheet: {result['preview']}")


@cli.command()
@config_options
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default="runs/lodo",
    show_default=True,
    help="Sweep directory: one run per held-out type and prior, lodo.csv/.md. "
    "Running again with the same directory resumes.",
)
@click.option(
    "--priors",
    default="meta,rank,scratch",
    show_default=True,
    help="Comma list of meta, multitask, rank, rank+meta, scratch.",
)
@click.option(
    "--shots",
    default=None,
    help="Comma list of k labelled examples, e.g. 0,10,50 (default meta.lodo_shots).",
)
@click.option(
    "--types",
    default=None,
    help="Comma list of types to hold out in turn (default meta.lodo_types, "
    "else every task type).",
)
@click.option(
    "--repeats",
    type=int,
    default=3,
    show_default=True,
    help="Draws of the k examples averaged per k.",
)
@user_errors
def lodo(config_path, data_dir, overrides, workdir, priors, shots, types, repeats):
    """Leave-one-distortion-out: train priors without one type, score it.

    For every held-out type: train each prior on the other task types, then
    report the SRCC on the held-out type with 0 and with k labelled examples.
    Writes lodo.csv and lodo.md (a table per type, prior and k).
    """
    extra = []
    if shots:
        extra.append(f"meta.lodo_shots=[{shots}]")
    if types:
        extra.append(f"meta.lodo_types=[{types}]")
    config = load_experiment_config(config_path, (*overrides, *extra), data_dir)

    from tfiqa.protocols.lodo import run_lodo

    if repeats < 1:
        raise UserError(f"--repeats must be >= 1. Received: {repeats}")
    run_lodo(config, workdir, priors=priors.split(","), repeats=repeats)
    with open(os.path.join(workdir, "lodo.md")) as f:
        click.echo(f.read())
    click.echo(f"Table: {os.path.join(workdir, 'lodo.csv')}")


def _exit_on_sigterm(signum, frame):
    # SystemExit unwinds `finally` blocks: temporary files and locks go away.
    sys.exit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
