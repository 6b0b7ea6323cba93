"""`tfiqa evaluate`."""

import os

import click

from tfiqa.cli import group, options


@group.cli.command()
@options.config_options("data.split_index=1", data_dir=False)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="The dataset's folder (default: data.dataset_dir of the config).",
)
@click.option(
    "--predictions", type=click.Path(dir_okay=False), help="CSV with image,score."
)
@click.option(
    "--model",
    "model_path",
    help="Model (.keras, SavedModel, .tflite or preset; preset:NAME is always "
    "the preset) to score the images with first; writes predictions.csv. "
    "Exclusive with --predictions.",
)
@click.option(
    "--dataset",
    required=True,
    type=options.RegistryChoice("tfiqa.data.readers", "READERS"),
    help="Dataset reader kind (tfiqa list datasets).",
)
@click.option(
    "--split",
    type=click.Choice(["all", "train", "val", "test"]),
    default="all",
    show_default=True,
    help="Score every image, or one part of --workdir's splits.",
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
@options.trust_model_option
@group.user_errors
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
    trust_model,
):
    """Compute SRCC/PLCC/KRCC/RMSE of predictions against a dataset's MOS.

    Matches the predictions CSV (image,score[,error]) to the dataset's images
    by path (absolute, relative to --data-dir, or unique file name), prints
    the metrics as JSON and writes metrics.json and scatter.png to --output.
    PLCC and RMSE are computed after a 4-parameter logistic fit.

    --data-dir is the dataset's folder (default: data.dataset_dir of --config,
    or of --workdir's config.yaml); it does not change the config's data.root.
    --model scores the images first and also writes predictions.csv.
    """
    group.start_tensorflow()
    from tfiqa import evaluation
    from tfiqa.write_failures import check_output_folder

    check_output_folder(output, "--output")

    workdir_config = os.path.join(workdir or "", "config.yaml")
    if config_path is None and workdir and os.path.isfile(workdir_config):
        config_path = workdir_config
    config = options.load_experiment_config(config_path, overrides)
    dataset_dir = data_dir or config.resolve_path(config.data.dataset_dir)
    if not dataset_dir:
        raise group.UserError(
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
        trust_model=trust_model,
    )
    for note in result.notes:
        click.echo(f"Warning: {note}", err=True)
    paths = evaluation.write_outputs(
        result, output, predictions_csv=model_path is not None
    )
    click.echo(evaluation.metrics_json(result))
    click.echo(f"Wrote {', '.join(paths.values())}", err=True)
