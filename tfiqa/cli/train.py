"""`tfiqa train`."""

import os

import click

from tfiqa.cli import group, options


@group.cli.command()
@options.config_options("stages.finetune.schedule.epochs=5")
@options.workdir_option(
    "runs/quickstart",
    "Run directory: config, checkpoints, logs, splits, model, metrics.",
)
@group.user_errors
def train(config_path, data_dir, overrides, workdir):
    """Train a quality model (stages: rank, meta, finetune).

    With no --config this runs the embedded quickstart: tiny scale, no
    downloads, no data folder needed.
    """
    config = options.load_experiment_config(config_path, overrides, data_dir)

    group.start_tensorflow()
    from tfiqa.training.experiment import format_summary, run_experiment
    from tfiqa.write_failures import check_output_folder, reporting_write_failures

    check_output_folder(workdir, "--workdir")
    click.echo(f"Training in {workdir} (stages: {', '.join(config.stages.order)})")
    with reporting_write_failures(workdir, "--workdir"):
        metrics = run_experiment(config, workdir)
    click.echo("")
    click.echo(format_summary(metrics))
    click.echo(f"\nModel: {metrics['model']}")
    click.echo(f"Metrics: {os.path.join(metrics['workdir'], 'metrics.json')}")
