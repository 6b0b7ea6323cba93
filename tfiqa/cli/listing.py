"""`tfiqa list`: the names a config can use."""

import click

from tfiqa.cli import group

LISTABLE = ("backbones", "datasets", "distortions", "configs", "presets")


@group.cli.command(name="list")
@click.argument("what", type=click.Choice(LISTABLE))
def list_names(what):
    """List the names a config can use: backbones, datasets (reader kinds),
    distortions (per set) or configs (built in, for --config); or the shipped
    presets (ready-to-use models for --model) with their accuracy and size."""
    for line in listing(what):
        click.echo(line)


def listing(what):
    """The lines `tfiqa list WHAT` prints."""
    if what == "backbones":
        group.start_tensorflow()
        from tfiqa.models.backbones import BACKBONES

        return BACKBONES.names()
    if what == "presets":
        return preset_table()
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


PRESET_COLUMNS = (
    ("name", "name"),
    ("backbone", "backbone"),
    ("formats", "formats"),
    ("size_mb", "MB"),
    ("input", "input"),
    ("scores", "scores"),
    ("test_srcc", "test SRCC"),
    ("test_plcc", "test PLCC"),
    ("latency_ms", "ms/image"),
)


def preset_table():
    """`tfiqa list presets`: one aligned row per shipped preset."""
    from tfiqa.presets import preset_rows

    rows = [[title for _, title in PRESET_COLUMNS]]
    for row in preset_rows():
        cells = []
        for key, _ in PRESET_COLUMNS:
            value = row.get(key, "")
            cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(PRESET_COLUMNS))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
