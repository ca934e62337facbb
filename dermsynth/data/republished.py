"""One manifest row per image, however many archives publish it.

ISIC 2019 republishes HAM10000's 10,015 images under the same ISIC ids, ISIC 2020 lists its own
duplicates (`ISIC_2020_Training_Duplicates.csv`), and any archive may hold byte-identical copies.
Kept twice, the same image is trained on twice or scored in both test sets. Rows are linked by
same id, listed pair or identical bytes; each linked set keeps one row, from the first source in
`ingest.source_priority`, whose `also_in` names the others (`source/image_id`). Its lesion and
patient ids are filled from the copies where it lacks them, so no grouping information is lost.
Every dropped copy goes to reports/duplicates.csv. Near-duplicates that are not the same image
stay in the manifest and are grouped by the split (perceptual hash), as before.
"""
from __future__ import annotations

import pandas as pd

from dermsynth.contracts import DUPLICATES_COLUMNS
from dermsynth.data.dedup import UnionFind
from dermsynth.errors import UserValueError

DEFAULT_PRIORITY = ("ham10000", "isic2019", "isic2020", "isic2024")
SAME_ID, LISTED, SAME_BYTES = "same id", "listed duplicate", "identical bytes"


def _link(uf: UnionFind, keys: pd.Series) -> None:
    """Union the rows that share a key (empty keys link nothing)."""
    for idx in keys[keys != ""].groupby(keys[keys != ""]).groups.values():
        for j in idx[1:]:
            uf.union(int(idx[0]), int(j))


def collapse(manifest: pd.DataFrame, priority: list[str] | tuple[str, ...] = DEFAULT_PRIORITY,
             listed_pairs: list[tuple[str, str, str]] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest with one row per image and an `also_in` column, the dropped copies).

    `manifest` needs image_id, source, lesion_id, patient_id and `sha256` (of the encoded bytes);
    `listed_pairs` holds (source, image_id_1, image_id_2) from duplicate lists."""
    unknown = sorted(set(manifest["source"]) - set(priority))
    if unknown:
        raise UserValueError(f"ingest.source_priority {list(priority)} does not name the source(s) {unknown}")
    m = manifest.reset_index(drop=True)
    uf = UnionFind(len(m))
    _link(uf, m["image_id"].astype(str))
    _link(uf, m["sha256"].astype(str))
    row_of = {(s, i): n for n, (s, i) in enumerate(zip(m["source"], m["image_id"]))}
    listed = set()
    for src, a, b in listed_pairs:
        if (src, a) in row_of and (src, b) in row_of:
            uf.union(row_of[(src, a)], row_of[(src, b)])
            listed |= {(src, a), (src, b)}
    m["dup_group"] = uf.labels()
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
    for col in ("lesion_id", "patient_id"):  # the kept row inherits ids only a copy had
        fill = dropped[dropped[col].astype(str) != ""].groupby("dup_group")[col].first()
        empty = kept[col].astype(str) == ""
        kept.loc[empty, col] = fill.reindex(kept.index[empty]).fillna("").to_numpy()
    out = kept.reset_index(drop=True).drop(columns=["dup_rank"]).sort_values(["source", "image_id"], ignore_index=True)
    return out, dups.sort_values(["source", "image_id"], ignore_index=True)


def summary(dups: pd.DataFrame) -> dict:
    by = dups.groupby(["source", "kind"]).size() if len(dups) else pd.Series(dtype=int)
    return {"dropped_copies": int(len(dups)),
            "dropped_per_source": {s: {k: int(n) for k, n in g.droplevel(0).items()} for s, g in by.groupby(level=0)}}
