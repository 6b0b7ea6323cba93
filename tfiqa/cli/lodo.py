"""`tfiqa lodo`."""

import os

import click

from tfiqa.cli import group, options


@group.cli.command()
@options.config_options("stages.meta.schedule.epochs=2")
@options.workdir_option(
    "runs/lodo",
    "Sweep directory: one run per held-out type and prior, lodo.csv/.md.",
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
    help="Comma list of k labelled examples, e.g. 0,10,50 "
    "(default protocols.lodo.shots).",
)
@click.option(
    "--types",
    default=None,
    help="Comma list of types to hold out in turn (default protocols.lodo.types, "
    "else every task type).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Draws of the k examples averaged per k.",
)
@group.user_errors
def lodo(config_path, data_dir, overrides, workdir, priors, shots, types, repeats):
    """Leave-one-distortion-out: train priors without one type, score it.

    For every held-out type: train each prior on the other task types, then
    report the SRCC on the held-out type with 0 and with k labelled examples.
    Writes lodo.csv and lodo.md (a table per type, prior and k).
    """
    extra = []
    if shots:
        extra.append(f"protocols.lodo.shots=[{shots}]")
    if types:
        extra.append(f"protocols.lodo.types=[{types}]")
    config = options.load_experiment_config(config_path, (*overrides, *extra), data_dir)

    group.start_tensorflow()
    from tfiqa.protocols.lodo import run_lodo

    run_lodo(config, workdir, priors=priors.split(","), repeats=repeats)
    with open(os.path.join(workdir, "lodo.md")) as f:
        click.echo(f.read())
    click.echo(f"Table: {os.path.join(workdir, 'lodo.csv')}")
