"""`tfiqa list`: the names a config can use."""

import click

from tfiqa.cli import base

LISTABLE = ("backbones", "datasets", "distortions", "configs")


@base.cli.command(name="list")
@click.argument("what", type=click.Choice(LISTABLE))
def list_names(what):
    """List the names a config can use: backbones, datasets (reader kinds),
    distortions (per set) or configs (built in, for --config)."""
    for line in listing(what):
        click.echo(line)


def listing(what):
    """The lines `tfiqa list WHAT` prints."""
    if what == "backbones":
        base.start_tensorflow()
        from tfiqa.models.backbones import BACKBONES

        return BACKBONES.names()
    if what == "datasets":
        from tfiqa.data.readers import READERS

        return READERS.names()
    if what == "distortions":
        from tfiqa.distortion_names import KADID10K_TYPES, LIVE_TYPES

        sets = {"kadid": KADID10K_TYPES, "live": LIVE_TYPES}
        return [f"{name}: {', '.join(types)}" for name, types in sets.items()]
    from importlib import resources

    folder = resources.files("tfiqa") / "configs"
    return sorted(
        p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")
    )
