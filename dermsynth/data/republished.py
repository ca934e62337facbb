"""One manifest row per image, however many archives publish it.

ISIC 2019 republishes HAM10000's 10,015 images under the same ISIC ids, ISIC 2020 lists its own
duplicates (`ISIC_2020_Training_Duplicates.csv`), and any archive may hold byte-identical copies.
Kept twice, the same image is trained on twice or scored in both test sets. Rows are linked by
same id, listed pair or identical bytes; each linked set keeps one row, from the first source in
`ingest.source_priority`, whose `also_in` names the others (`source/image_id`). Its lesion and
patient ids are filled from the copies where it lacks them, so no grouping information is lost.
Every dropped copy goes to reports/duplicates.csv. Near-duplicates that are not the same image
stay in the manifest and are grouped by the split (perceptual hash), as before.

Copies that disagree on the label (HAM10000 says mel, ISIC 2019 says NV for the same ISIC id) are
never resolved by the priority: `split_conflicts` takes every copy of such an image out, to be
quarantined as conflicting labels, and lists each in reports/duplicates.csv with kind `conflict`
(kept_source and kept_id empty: no copy is kept).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dermsynth.contracts import DUPLICATES_COLUMNS
from dermsynth.data.dedup import UnionFind
from dermsynth.errors import UserValueError

# the challenge releases before the ISIC Archive: their copy (and label) of an image stays the one kept, as
# before an archive download was added; the kept row still takes the archive's licence and skin type
DEFAULT_PRIORITY = ("ham10000", "isic2019", "isic2020", "isic2024", "isic_archive")
SAME_ID, LISTED, SAME_BYTES = "same id", "listed duplicate", "identical bytes"
CONFLICT = "conflict"  # copies of one image with different labels: none kept, all quarantined
INHERITED = ("lesion_id", "patient_id", "fitzpatrick_skin_type", "copyright_license", "attribution")


def _link(uf: UnionFind, keys: pd.Series) -> None:
    """Union the rows that share a key (empty keys link nothing)."""
    for idx in keys[keys != ""].groupby(keys[keys != ""]).groups.values():
        for j in idx[1:]:
            uf.union(int(idx[0]), int(j))


def _groups(m: pd.DataFrame, listed_pairs: list[tuple[str, str, str]]) -> tuple[np.ndarray, set[tuple[str, str]]]:
    """The same-image group of each row of `m` (reset index) by id, bytes and listed pair, and the listed rows."""
    uf = UnionFind(len(m))
    _link(uf, m["image_id"].astype(str))
    _link(uf, m["sha256"].astype(str))
    row_of = {(s, i): n for n, (s, i) in enumerate(zip(m["source"], m["image_id"]))}
    listed = set()
    for src, a, b in listed_pairs:
        if (src, a) in row_of and (src, b) in row_of:
            uf.union(row_of[(src, a)], row_of[(src, b)])
            listed |= {(src, a), (src, b)}
    return uf.labels(), listed


def split_conflicts(manifest: pd.DataFrame, listed_pairs: list[tuple[str, str, str]] = (),
                    max_named: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows whose copies agree on the label, every row of an image whose copies do not).

    The second table has the manifest's columns and a `detail` naming the disagreeing copies
    (`file label (diagnosis)`), for the quarantine."""
    m = manifest.reset_index(drop=True)
    group = pd.Series(_groups(m, listed_pairs)[0], index=m.index, dtype=int)
    bad = m["label"].groupby(group).transform("nunique") > 1
    if not bad.any():
        return m, m.iloc[:0].assign(detail=pd.Series(dtype=str))
    out = m[bad].copy()
    dx = out["diagnosis"].astype(str) if "diagnosis" in out else pd.Series("", index=out.index)
    where = out["file"].astype(str) if "file" in out else out["source"] + "/" + out["image_id"]
    names = where + " " + out["label"] + dx.map(lambda d: f" ({d})" if d else "")
    listing = names.groupby(group[bad]).agg(
        lambda s: "; ".join(sorted(s)[:max_named]) + (f"; and {len(s) - max_named} more" if len(s) > max_named else ""))
    out["detail"] = "copies of one image disagree on the label: " + group[bad].map(listing)
    return m[~bad].reset_index(drop=True), out.reset_index(drop=True)


def conflict_rows(conflicts: pd.DataFrame) -> pd.DataFrame:
    """reports/duplicates.csv rows for the copies `split_conflicts` took out: none is kept."""
    return pd.DataFrame({"source": conflicts["source"], "image_id": conflicts["image_id"], "kept_source": "",
                         "kept_id": "", "kind": CONFLICT}, columns=DUPLICATES_COLUMNS)


def collapse(manifest: pd.DataFrame, priority: list[str] | tuple[str, ...] = DEFAULT_PRIORITY,
             listed_pairs: list[tuple[str, str, str]] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest with one row per image and an `also_in` column, the dropped copies).

    `manifest` needs image_id, source, lesion_id, patient_id and `sha256` (of the encoded bytes);
    `listed_pairs` holds (source, image_id_1, image_id_2) from duplicate lists. Copies are assumed to
    agree on the label (`split_conflicts` first)."""
    unknown = sorted(set(manifest["source"]) - set(priority))
    if unknown:
        raise UserValueError(f"ingest.source_priority {list(priority)} does not name the source(s) {unknown}")
    m = manifest.reset_index(drop=True)
    groups, listed = _groups(m, listed_pairs)
    m["dup_group"] = groups
    m["dup_rank"] = m["source"].map({s: k for k, s in enumerate(priority)})
    m = m.sort_values(["dup_group", "dup_rank", "image_id"], kind="stable")
    first = ~m["dup_group"].duplicated()
    kept, dropped = m[first].set_index("dup_group"), m[~first]
    rows = []
    for r in dropped.itertuples():
        k = kept.loc[r.dup_group]
        kind = SAME_ID if r.image_id == k.image_id else LISTED if (r.source, r.image_id) in listed else SAME_BYTES
        rows.append({"source": r.source, "image_id": r.image_id, "kept_source": k.source, "kept_id": k.image_id,
                     "kind": kind})
    dups = pd.DataFrame(rows, columns=DUPLICATES_COLUMNS)
    names = (dropped["source"] + "/" + dropped["image_id"]).groupby(dropped["dup_group"])
    also = names.agg(lambda s: ";".join(sorted(s))) if len(dropped) else pd.Series(dtype=str)
    kept["also_in"] = also.reindex(kept.index, fill_value="")
    # the kept row inherits ids (and the ISIC Archive's licence, attribution, skin type) only a copy had
    for col in [c for c in INHERITED if c in kept.columns]:
        fill = dropped[dropped[col].astype(str) != ""].groupby("dup_group")[col].first()
        empty = kept[col].astype(str) == ""
        kept.loc[empty, col] = fill.reindex(kept.index[empty]).fillna("").to_numpy()
    out = kept.reset_index(drop=True).drop(columns=["dup_rank"]).sort_values(["source", "image_id"], ignore_index=True)
    return out, dups.sort_values(["source", "image_id"], ignore_index=True)


def summary(dups: pd.DataFrame) -> dict:
    """Dropped copies per source and kind; copies in conflict are counted apart (they are quarantined)."""
    conflict = dups["kind"] == CONFLICT
    dropped = dups[~conflict]
    by = dropped.groupby(["source", "kind"]).size() if len(dropped) else pd.Series(dtype=int)
    return {"dropped_copies": int(len(dropped)),
            "dropped_per_source": {s: {k: int(n) for k, n in g.droplevel(0).items()} for s, g in by.groupby(level=0)},
            "label_conflicts": int(conflict.sum())}
