"""`tfiqa beam-predict`."""

import contextlib
import logging

import click

from tfiqa.cli import group, options


@group.cli.command(
    "beam-predict",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.option(
    "--model",
    "model_path",
    required=True,
    help=".keras, SavedModel dir, .tflite or preset name, local to the workers "
    "or on a Beam filesystem (gs://...).",
)
@click.option(
    "--output",
    required=True,
    help="Prefix of the CSV shards (image,score,error): PREFIX-00000-of-00004.csv; "
    "local or gs://, s3://...",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help="An image file, a folder or a glob (local or gs://...); repeatable.",
)
@click.option(
    "--input-list",
    "lists",
    multiple=True,
    help="A text file (or glob of them) with one image path per line; repeatable.",
)
@options.crops_options
@click.option(
    "--num-shards",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="CSV files to write (0: the runner chooses).",
)
@options.trust_model_option
@click.pass_context
@group.user_errors
def beam_predict(
    ctx, model_path, output, inputs, lists, crops, full, num_shards, trust_model
):
    """Score images with an Apache Beam pipeline (local, Dataflow, Flink, Spark).

    The same rows as `tfiqa predict` (image,score,error; an image that cannot
    be read gets its error, the others are scored), written as CSV shards.
    Every other option goes to Beam, e.g. --runner DataflowRunner --project P
    --region R --temp_location gs://B/tmp, or on this machine
    --direct_num_workers 2 --direct_running_mode multi_processing.
    Needs the beam extra: pip install "tfiqa[beam]".
    """
    if crops is not None and full:
        raise group.UserError("--crops and --full are mutually exclusive; pass one.")
    verbose = ctx.find_root().params.get("verbose")
    with _beam_logging(verbose):
        try:
            from tfiqa.beam import run_scoring
            from tfiqa.beam.scores_csv import shard_prefix
        except ImportError as e:
            raise group.UserError(str(e)) from None
        beam_args = list(ctx.args)
        if not verbose and not any("sdk_harness_log_level" in a for a in beam_args):
            beam_args.append("--default_sdk_harness_log_level=ERROR")
        summary = run_scoring(
            model_path,
            output,
            inputs=inputs,
            lists=lists,
            crops=crops,
            full=full,
            trust_model=trust_model,
            num_shards=num_shards,
            beam_args=beam_args,
        )
    scored, failed = summary["scored"], summary["failed"]
    click.echo(
        f"Scored {scored} of {scored + failed} images -> {shard_prefix(output)}-*.csv"
        + (f"; {failed} failed (see the error column)." if failed else "."),
        err=True,
    )
    if scored == 0 and failed:
        raise group.UserError("No image could be scored; see the error column.")


@contextlib.contextmanager
def _beam_logging(verbose):
    """Beam's log lines (worker start-up, optional modules it did not find)
    only with -v, where its INFO lines (a Dataflow job's URL) show too."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO if verbose else logging.ERROR)
    if verbose and not root.handlers:
        logging.basicConfig(level=logging.INFO)
    try:
        yield
    finally:
        root.setLevel(level)
