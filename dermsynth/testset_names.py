"""Test sets by name: the project's own (ISIC, HAM10000) first, then any external one (evaluate.external).

A leaf module (no project imports): the evaluation, the report, the cards and `dermsynth metrics` all
order and name test sets the same way.
"""
from __future__ import annotations

from collections.abc import Iterable

TESTSET_NAME = {"isic": "ISIC", "ham10000": "HAM10000"}
# a test set is a key prefix with all three: the training curves (val_auc) and best_val_auc, which
# MLflow holds beside the test metrics, have no sensitivity or specificity
TESTSET_MARKERS = ("auc", "sensitivity", "specificity")


def testset_name(ts: str) -> str:
    return TESTSET_NAME.get(ts, ts.upper())


def testsets(keys: Iterable[str], prefix: str = "") -> list[str]:
    """The test sets of a metrics file (prefix "") or of MLflow columns (prefix "metrics."), from their
    `<testset>_<metric>` keys: the project's own first, in their usual order, then any other."""
    keys = {k[len(prefix):] for k in keys if k.startswith(prefix)}
    found = {k[:-len("_auc")] for k in keys if k.endswith("_auc")}
    return in_order(ts for ts in found if all(f"{ts}_{m}" in keys for m in TESTSET_MARKERS))


def in_order(names: Iterable[str]) -> list[str]:
    """Test set names, the project's own first in their usual order, then the external ones by name."""
    found = set(names)
    return [ts for ts in TESTSET_NAME if ts in found] + sorted(found - set(TESTSET_NAME))
