"""`tfiqa predict`."""

import click

from tfiqa.cli import group, options


@group.cli.command()
@click.option(
    "--model",
    "model_path",
    required=True,
    help=".keras, SavedModel dir, .tflite or preset name (preset:NAME is always "
    "the preset, even where a path of that name exists).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="CSV to write (image,score,error; a regular file). A killed run "
    "resumes from OUTPUT.partial when run again with the same model.",
)
@options.crops_options
@options.trust_model_option
@click.argument("inputs", nargs=-1, required=True)
@group.user_errors
def predict(model_path, output, crops, full, trust_model, inputs):
    """Score images (files or folders) with a trained model.

    Writes CSV rows image,score,error (to --output, or to stdout); an image
    that cannot be read gets its message in the error column and the others
    are still scored. Scores are higher-is-better (0..1 for sigmoid models).
    Default: the average of 5 deterministic crops of the model's crop size.
    """
    if crops is not None and full:
        raise group.UserError("--crops and --full are mutually exclusive; pass one.")
    from tfiqa.files import check_regular_output

    if output:
        check_regular_output(output, "--output")
    from tfiqa.inference import load
    from tfiqa.inference.loaders import resolve_model

    model = resolve_model(model_path)
    if model.needs_tensorflow:  # LiteRT alone scores .tflite files
        group.start_tensorflow()
    from tfiqa.inference.predict import echo_csv, expand_inputs, predict_files
    from tfiqa.inference.prediction_writer import model_record, predict_resumable
    from tfiqa.progress import progress

    paths = expand_inputs(inputs)
    scorer = load(model, trust_model=trust_model)

    def run(todo, sink=None):
        with progress(len(todo), "Scoring", unit="image") as bar:
            return predict_files(
                scorer, todo, crops, full, on_progress=bar.add, sink=sink
            )

    if output:
        rows = predict_resumable(
            output,
            paths,
            run,
            log=lambda message: click.echo(message, err=True),
            model=model_record(scorer, crops, full),
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
        raise group.UserError("No image could be scored; see the error column.")
