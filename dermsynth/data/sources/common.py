"""Reading archive metadata tables the same way for every source."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dermsynth.data.records import IngestError, outside_link
from dermsynth.data.subgroups import age_band, harmonise_sex, harmonise_site


def _empty_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows with every field empty or blank, column by column over the rows still in question, so that a
    spreadsheet export's million trailing `,,,,,,` rows cost one vectorised pass, not a row each."""
    empty = np.ones(len(df), dtype=bool)
    for col in df.columns:
        rows = np.flatnonzero(empty)
        if not len(rows):
            break
        cells = df[col].to_numpy()[rows]
        blank = cells == ""
        if not blank.all():  # only cells with something in them need stripping
            blank[~blank] = pd.Series(cells[~blank], dtype=object).str.strip().eq("").to_numpy()
        empty[rows] = blank
    return empty


def read_table(path: Path, required: list[str]) -> tuple[pd.DataFrame, int]:
    """A metadata CSV as strings, and how many all-empty rows were skipped; a clear error naming the
    file when it cannot be used. All-empty rows are no item (no id, no label): counted, not quarantined."""
    try:
        # na_filter=False: every cell a string, '' for empty ones and for a short row's missing fields
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except Exception as e:  # pandas raises many types for a broken CSV
        raise IngestError(f"{path}: cannot parse metadata CSV ({type(e).__name__}: {e})") from e
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise IngestError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    empty = _empty_rows(df)
    return (df[~empty].reset_index(drop=True) if empty.any() else df), int(empty.sum())


def header(path: Path | None) -> list[str]:
    """The column names of a CSV, from its header alone (not the million rows below it); [] when there is
    no file or it cannot be parsed: for recognising a layout, which must not fail on a stray file."""
    if path is None:
        return []
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0, encoding="utf-8-sig",
                                                     encoding_errors="replace").columns]
    except Exception:  # pandas raises many types for a broken or binary file
        return []


def find_file(folder: Path, names: list[str]) -> Path | None:
    """The first of `names` present directly in `folder` or one level down (zips often nest)."""
    for name in names:
        for cand in (folder / name, *folder.glob(f"*/{name}")):
            if cand.is_file():
                return cand
    return None


def metadata_file(folder: Path, names: list[str], required: bool = True) -> Path | None:
    """`find_file`, refusing a link that leads out of the source folder (the labels of every image would
    come from a file outside the archive); a missing required file is an error naming the folder."""
    path = find_file(folder, names)
    if path is None:
        if required:
            raise IngestError(f"{folder}: none of {names} found")
        return None
    if target := outside_link(folder, path):
        raise IngestError(f"{path}: links to {target}, outside the source folder {folder.resolve()}; "
                          "copy the file into the archive or link the whole source folder instead")
    return path


def attributes(row: dict, sex: str, age: str, site: str) -> dict:
    """Harmonised patient-group attributes from a metadata row's own column names (absent = unknown)."""
    return {"sex": harmonise_sex(row.get(sex)), "age_band": age_band(row.get(age)), "site": harmonise_site(row.get(site))}
