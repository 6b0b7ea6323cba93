"""`run_scoring`: the whole `tfiqa beam-predict` job, on any Beam runner."""

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    PipelineOptions,
    StandardOptions,
    _BeamArgumentParser,
)

from tfiqa.beam.filesystems import is_remote
from tfiqa.beam.image_paths import ImagePaths
from tfiqa.beam.score_images import NAMESPACE, ScoreImages
from tfiqa.beam.scores_csv import WriteScoresCSV
from tfiqa.errors import TfiqaError

# Runners whose workers do not see this machine's files.
REMOTE_RUNNERS = ("DataflowRunner",)


def pipeline_options(beam_args):
    """`PipelineOptions` from Beam's own command-line flags.

    Raises:
        TfiqaError: a flag no Beam options class knows (Beam itself would
            only log and drop it, so a typo would go unnoticed).
    """
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(beam_args))
    flags = [a for a in unknown if a.startswith("-")]
    if unknown:
        raise TfiqaError(
            "Unknown option for tfiqa beam-predict or Beam (Beam options are "
            "written like --runner DataflowRunner or --direct_num_workers=2). "
            f"Received: {' '.join(flags or unknown)}"
        )
    return PipelineOptions(list(beam_args))


def check_sources(model, inputs, lists, options):
    """Fails before launching on what would only fail on the workers."""
    from tfiqa.inference.loaders import resolve_model

    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    remote_runner = runner.split(".")[-1] in REMOTE_RUNNERS
    if not is_remote(model):
        shipped = resolve_model(model).shipped  # exists, known format, intact
        if remote_runner and not shipped:
            raise TfiqaError(
                f"{runner} workers cannot read this machine's files: copy the model "
                f"to a bucket (gs://...) or use a preset. Received: --model {model}"
            )
    local = [i for i in [*inputs, *lists] if not is_remote(i)]
    if remote_runner and local:
        raise TfiqaError(
            f"{runner} workers cannot read this machine's files: put the images "
            f"and lists in a bucket (gs://...). Received: {local[0]}"
        )


def run_scoring(
    model,
    output,
    inputs=(),
    lists=(),
    crops=None,
    full=False,
    trust_model=False,
    num_shards=0,
    beam_args=(),
):
    """Scores images into CSV shards with a Beam pipeline and waits for it.

    Args:
        model: str. Anything `tfiqa.load` accepts, or a model on a Beam
            filesystem (see `IQAModelHandler`).
        output: str. Prefix of the CSV shards (see `WriteScoresCSV`).
        inputs, lists: see `ImagePaths`.
        crops, full, trust_model: see `ScoreImages`.
        num_shards: int. CSV shards (0: the runner chooses).
        beam_args: list of str. Beam's pipeline options as command-line
            flags, e.g. ["--runner", "DataflowRunner", "--project", "p"].

    Returns:
        dict: "state" (the runner's final state), "scored" and "failed"
        (image counts), "metrics" ({name: value} of the "tfiqa" namespace;
        a distribution gives `<name>_sum` and `<name>_count`).

    Raises:
        TfiqaError: bad options or sources (before anything runs).
    """
    if not inputs and not lists:
        raise TfiqaError("Nothing to score: give --input or --input-list.")
    options = pipeline_options(beam_args)
    check_sources(model, inputs, lists, options)
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | "Paths" >> ImagePaths(inputs, lists)
        | "Score" >> ScoreImages(model, crops=crops, full=full, trust_model=trust_model)
        | "CSV" >> WriteScoresCSV(output, num_shards)
    )
    result = pipeline.run()
    state = result.wait_until_finish()
    metrics = pipeline_metrics(result)
    return {
        "state": str(state),
        "scored": int(metrics.get("images_scored", 0)),
        "failed": int(metrics.get("images_failed", 0)),
        "metrics": metrics,
    }


def pipeline_metrics(result):
    """{name: value} of a finished pipeline's "tfiqa" metrics."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    values = {}
    for kind in ("counters", "distributions"):
        for item in query.get(kind, []):
            value = item.committed if item.committed is not None else item.attempted
            name = item.key.metric.name
            if kind == "counters":
                values[name] = values.get(name, 0) + value
            elif value is not None:
                values[f"{name}_sum"] = values.get(f"{name}_sum", 0) + value.sum
                values[f"{name}_count"] = values.get(f"{name}_count", 0) + value.count
    return values
