"""`tfiqa distort`."""

import click

from tfiqa.cli import group, options


@group.cli.command()
@options.folder_option(
    "--input", "input_dir", required=True, help="Folder of pristine images."
)
@options.folder_option(
    "--output",
    "output_dir",
    required=True,
    help="Folder for refs/, images/ and distortions.csv.",
)
@click.option(
    "--distortion-set",
    type=click.Choice(["kadid", "live"]),
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
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the distortion parameters (same seed, same images).",
)
@click.option(
    "--pseudo-mos", is_flag=True, help="Add a full-reference pseudo-MOS column."
)
@options.file_option("--preview", help="Write a types x levels contact sheet PNG.")
@group.user_errors
def distort(
    input_dir, output_dir, distortion_set, types, levels, seed, pseudo_mos, preview
):
    """Write synthetically distorted copies of pristine images (KADID-style).

    Output: refs/*.png, images/*.png and distortions.csv (written last).
    """
    group.start_tensorflow()
    from tfiqa.distortions.writer import distort_folder, parse_levels

    result = distort_folder(
        input_dir,
        output_dir,
        distortion_set=distortion_set,
        types=[t.strip() for t in types.split(",") if t.strip()],
        levels=parse_levels(levels),
        seed=seed,
        pseudo_mos=pseudo_mos,
        preview=preview,
    )
    click.echo(f"Wrote {result['images']} distorted images and {result['csv']}")
    if result["preview"]:
        click.echo(f"Contact sheet: {result['preview']}")
