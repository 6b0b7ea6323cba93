"""`tfiqa export`."""

import os

import click

from tfiqa.cli import group, options


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


@group.cli.command()
@options.config_options("export.version=2", data_dir=False)
@options.file_option(
    "--model", "model_path", required=True, help="The trained .keras model."
)
@options.folder_option(
    "--output", required=True, help="Folder for the exports and export.json."
)
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["saved_model", "tflite", "all"]),
    help="Formats to write. Default: export.formats of the config.",
)
@click.option(
    "--quantize",
    help="Comma list of none,fp16,dynamic,int8,int8_io. Default: "
    "export.quantize of the config (int8 variants need --calibration-dir).",
)
@options.folder_option("--calibration-dir", help="Images for int8 calibration.")
@options.folder_option(
    "--verify-dir", help="Score these images with every export and compare."
)
@click.option(
    "--preset",
    "preset_name",
    help="Also package the model and its TFLite files as this preset "
    "(OUTPUT/presets/NAME, see tfiqa/presets/). NAME is a name, not a path: "
    "letters, digits, '.', '_', '-'.",
)
@group.user_errors
def export(
    config_path,
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
    if preset_name is not None:
        from tfiqa.presets import check_preset_name

        check_preset_name(preset_name)
    run_config = os.path.join(
        os.path.dirname(os.path.abspath(model_path)), "config.yaml"
    )
    if config_path is None and os.path.isfile(run_config):
        config_path = run_config
    config = options.load_experiment_config(config_path, overrides).export
    formats, variants = export_choices(config, export_format, quantize, calibration_dir)

    group.start_tensorflow()
    from tfiqa.export import export_model
    from tfiqa.inference.backends.keras import load_keras_model
    from tfiqa.write_failures import check_output_folder, reporting_write_failures

    model = load_keras_model(model_path)
    check_output_folder(output, "--output")
    with reporting_write_failures(output, "--output"):
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
        if preset_name:
            from tfiqa.presets.build import write_preset

            preset_folder = os.path.join(output, "presets", preset_name)
            write_preset(model, model_path, preset_folder, preset_name, manifest)
    if manifest["saved_model"]:
        click.echo(f"SavedModel: {manifest['saved_model']}")
        click.echo(f"TF Serving config: {manifest['models_config']}")
    for path in manifest["tflite"].values():
        click.echo(f"TFLite: {path}")
    if preset_name:
        click.echo(f"Preset: {preset_folder}")
