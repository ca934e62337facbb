"""Reading archive metadata tables the same way for every source."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dermsynth.data.records import IngestError
from dermsynth.data.subgroups import age_band, harmonise_sex, harmonise_site


def read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """A metadata CSV as strings, with a clear error naming the file when it cannot be used."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as e:  # pandas raises many types for a broken CSV
        raise IngestError(f"{path}: cannot parse metadata CSV ({type(e).__name__}: {e})") from e
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise IngestError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def find_file(folder: Path, names: list[str]) -> Path | None:
    """The first of `names` present directly in `folder` or one level down (zips often nest)."""
    for name in names:
        for cand in (folder / name, *folder.glob(f"*/{name}")):
            if cand.is_file():
                return cand
    return None


def attributes(row: dict, sex: str, age: str, site: str) -> dict:
    """Harmonised patient-group attributes from a metadata row's own column names (absent = unknown)."""
    return {"sex": harmonise_sex(row.get(sex)), "age_band": age_band(row.get(age)), "site": harmonise_site(row.get(site))}
