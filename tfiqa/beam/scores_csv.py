"""`WriteScoresCSV`: score rows -> sharded CSV files like `tfiqa predict`'s."""

import apache_beam as beam

from tfiqa.inference.predict import CSV_COLUMNS, ENCODING, csv_records

SUFFIX = ".csv"


def shard_prefix(output):
    """The file prefix of `output` ("scores.csv" -> "scores")."""
    return output[: -len(SUFFIX)] if output.lower().endswith(SUFFIX) else output


class WriteScoresCSV(beam.PTransform):
    """Writes `ScoreImages` rows as CSV shards `<prefix>-SSSSS-of-NNNNN.csv`.

    Every shard is a CSV file as `tfiqa predict --output` writes one: the
    header image,score,error, scores with 6 decimals (empty on error), file
    names in UTF-8 with undecodable bytes escaped by `tfiqa.csv_name` (so
    `tfiqa.image_path` maps them back) and quoted when they hold a comma,
    quote or line break. Rows are in no particular order.

    Args:
        output: str. The shards' prefix, local or on any Beam filesystem
            ("gs://bucket/scores"; a ".csv" ending is dropped).
        num_shards: int. 0 lets the runner choose.

    Returns (when applied):
        PCollection of the shard file names.
    """

    def __init__(self, output, num_shards=0):
        super().__init__()
        self.output = str(output)
        self.num_shards = int(num_shards)

    def expand(self, rows):
        header = (",".join(CSV_COLUMNS) + "\n").encode()
        return (
            rows
            | "Format" >> beam.Map(_record)
            | "Write"
            >> beam.io.WriteToText(
                shard_prefix(self.output),
                file_name_suffix=SUFFIX,
                append_trailing_newlines=False,
                num_shards=self.num_shards,
                header=header,
            )
        )


def _record(row):
    # Bytes: WriteToText writes them as they are.
    return csv_records([row]).encode(**ENCODING)
