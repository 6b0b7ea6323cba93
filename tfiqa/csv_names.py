r"""File names in result CSVs: always valid UTF-8, mapped back to the exact file.

POSIX file names are bytes; a name that is not valid UTF-8 would make a
whole CSV unreadable for pandas or Python's `csv` module. So every text field
`tfiqa predict`, `tfiqa beam-predict` and `tfiqa evaluate` write goes through
`csv_name`:

- a byte that is not part of valid UTF-8 becomes `\xHH` (two lower-case hex
  digits): `b"caf\xe9.jpg"` is written `caf\xe9.jpg`;
- a backslash becomes two backslashes, so that a name that already holds a
  text like `\xe9` is told apart from an escaped byte;
- everything else (any valid UTF-8) is written as it is.

`image_path` undoes it exactly, for every byte string. A backslash followed
by anything other than a backslash or `x` and two hex digits is read as a
plain backslash, so hand-written CSVs with such names still work.

Example:
```python
import tfiqa

name = tfiqa.csv_name(b"caf\xe9.jpg")  # 'caf\\xe9.jpg'
open(tfiqa.image_path(name), "rb")  # the file on disk
```
"""

import os
import re

# os.fsdecode turns each undecodable byte 0xHH into the lone surrogate U+DCHH.
_SURROGATE_BASE = 0xDC00
_ESCAPED = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def csv_name(path):
    """`path` (str or bytes) as valid UTF-8 text; `image_path` reverses it."""
    text = os.fsdecode(path)
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - _SURROGATE_BASE:02x}")
        else:
            out.append(char)
    return "".join(out)


def image_path(name):
    """The file name (str, as `os.fsdecode` gives it) that `csv_name` wrote
    as `name`; `os.fsencode(image_path(name))` is its bytes on disk."""

    def unescape(match):
        text = match.group(1)
        if text == "\\":
            return "\\"
        code = int(text[1:], 16)
        return chr(code) if code < 0x80 else chr(_SURROGATE_BASE + code)

    return _ESCAPED.sub(unescape, name)
