"""The paper's Table 1 (dataset properties), to report prepared shapes next to it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table1Row:
    features: int | tuple[int, ...]
    train: int
    val: int
    test: int
    note: str = ""  # a known reason for a difference


TABLE1: dict[str, Table1Row] = {
    "WN": Table1Row(
        7,
        5197,
        650,
        650,
        "every public version of Wine Quality has 11 numeric features; which 7 the paper kept is not said",
    ),
    "AE": Table1Row(33, 11000, 1375, 1375),
    "BS": Table1Row(6, 13903, 1738, 1738),
    "SC": Table1Row(79, 17010, 2126, 2127),
    "EL": Table1Row(16, 13279, 1660, 1660),
    "CA": Table1Row(
        21, 6553, 819, 819, "8,192 rows split 80/10/10 give 820 test rows; the paper's three sizes add up to 8,191"
    ),
    "DM": Table1Row(6, 43152, 5394, 5394),
    "RM": Table1Row((3, 28, 28), 1080, 120, 400),
}


def compare_with_table1(code: str, rows: dict, feature_shape: list[int]) -> dict | None:
    """The paper's numbers for ``code`` beside ours, and a sentence for each difference."""
    paper = TABLE1.get(code)
    if paper is None:
        return None
    features = list(paper.features) if isinstance(paper.features, tuple) else [paper.features]
    ours = {"features": feature_shape, **rows}
    theirs = {"features": features, "train": paper.train, "val": paper.val, "test": paper.test}
    differences = [
        f"{name}: {ours[name]} here, {theirs[name]} in the paper" for name in theirs if ours[name] != theirs[name]
    ]
    return {
        "paper": theirs,
        "here": ours,
        "matches": not differences,
        "differences": differences,
        "note": paper.note if differences else "",
    }
