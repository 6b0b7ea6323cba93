"""`tfiqa export`."""

import click

from tfiqa.cli import base


@base.cli.command()
@base.config_options("export.version=2", data_dir=False)
@base.file_option(
    "--model", "model_path", required=True, help="The trained .keras model."
)
@base.folder_option(
    "--output", required=True, help="Folder for the exports and export.json."
)
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["saved_model", "tflite", "all"]),
    default=None,
    help="Which formats to write (default: export.formats of the config, "
    "saved_model and tflite).",
)
@click.option(
    "--quantize",
    default=None,
    help="Comma list of none,fp16,dynamic,int8,int8_io (default: "
    "export.quantize of the config, none).",
)
@base.folder_option("--calibration-dir", help="Images for int8 calibration.")
@base.folder_option(
    "--verify-dir", help="Score these images with every export and compare."
)
@base.user_errors
def export(
    config_path,
    overrides,
    model_path,
    output,
    export_format,
    quantize,
    calibration_dir,
    verify_dir,
):
    """Export a model to a TF Serving SavedModel and/or TFLite."""
    config = base.load_experiment_config(config_path, overrides).export
    if export_format is None:
        formats = list(config.formats)
    elif export_format == "all":
        formats = ["saved_model", "tflite"]
    else:
        formats = [export_format]
    if quantize is None:
        variants = list(config.quantize)
    else:
        variants = [q.strip() for q in quantize.split(",") if q.strip()]

    base.start_tensorflow()
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
