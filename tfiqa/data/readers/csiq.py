"""`csiq`: the CSIQ image quality database.

Layout:
```
src_imgs/<image>.png
dst_imgs/<folder>/<image>.<LABEL>.<level>.png   # e.g. dst_imgs/awgn/1600.AWGN.1.png
csiq.DMOS.xlsx   # sheet "all_by_image": image, dst_idx, dst_type, dst_lev,
                 # dmos_std, dmos (DMOS in [0, 1], lower is better)
```
The spreadsheet's table does not start at cell A1 (there are leading empty
columns), so the header row is located by its "image" and "dmos" cells.

Reference: E.C. Larson, D.M. Chandler, "Most apparent distortion:
full-reference image quality assessment and the role of strategy", JEI 2010.
"""

import os

import pandas as pd

from tfiqa.data.readers import shared
from tfiqa.data.readers.registry import READERS
from tfiqa.errors import DataError

# dst_type in the spreadsheet -> (folder under dst_imgs/, label in file names)
CSIQ_TYPES = {
    "noise": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}
CSIQ_COLUMNS = ("image", "dst_type", "dst_lev", "dmos")


def _read_sheet(path, sheet):
    try:
        raw = pd.read_excel(path, sheet_name=sheet, header=None)
    except ValueError as e:
        raise DataError(
            f"Cannot read sheet '{sheet}' of {path}: {e}. Received sheet={sheet!r}"
        ) from e
    for row_index, row in raw.iterrows():
        cells = [str(v).strip().lower() for v in row.tolist()]
        if "image" in cells and "dmos" in cells:
            header = [str(v).strip().lower() for v in row.tolist()]
            table = raw.iloc[row_index + 1 :].copy()
            table.columns = header
            keep = [c for c in table.columns if c and c != "nan"]
            return table[keep].dropna(how="all")
    raise DataError(
        f"Sheet '{sheet}' of {path} has no header row with the columns "
        f"{', '.join(CSIQ_COLUMNS)}. Received first row: {raw.iloc[0].tolist()}"
    )


@READERS.register("csiq")
def read_csiq(data_dir, file="csiq.DMOS.xlsx", sheet="all_by_image", skip_bad=False):
    """Reads CSIQ (DMOS in [0, 1], lower is better -> flipped).

    Args:
        data_dir: str. The CSIQ folder.
        file: str. The DMOS spreadsheet.
        sheet: str. Its sheet with one row per distorted image.
        skip_bad: bool. Log and skip rows whose image is missing.
    """
    path = shared.require_file(os.path.join(data_dir, file), "CSIQ score file")
    table = _read_sheet(path, sheet)
    missing = [c for c in CSIQ_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"CSIQ sheet '{sheet}' of {path} has no column {', '.join(missing)}. "
            f"Received columns: {', '.join(map(str, table.columns))}"
        )
    folders = {}
    records = []
    for i, row in enumerate(table.to_dict("records"), start=1):
        image = shared.cell_str(row["image"])
        dst_type = str(row["dst_type"]).strip().lower()
        if dst_type not in CSIQ_TYPES:
            raise DataError(
                f"CSIQ sheet '{sheet}' of {path}, data row {i}: unknown dst_type. "
                f"Valid: {', '.join(CSIQ_TYPES)}. Received: {row['dst_type']!r}"
            )
        level = int(shared.to_float(row["dst_lev"], path, i))
        dmos = shared.to_float(row["dmos"], path, i)
        folder, label = CSIQ_TYPES[dst_type]
        if folder not in folders:
            folders[folder] = shared.CaseInsensitiveFolder(
                os.path.join(data_dir, "dst_imgs", folder)
            )
        records.append(
            shared.make_record(
                folders[folder].path(f"{image}.{label}.{level}.png"),
                shared.scale_score(dmos, (0.0, 1.0), higher_is_better=False),
                dmos,
                image,
                folder,
                level,
            )
        )
    return shared.check_images(records, path, skip_bad)
