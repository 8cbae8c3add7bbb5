"""Turn raw data into the train/val/test arrays every method trains on (section 4, Table 1).

Tabular data follows the numeric regression benchmark of Grinsztajn et al. (2022), the paper's
source of datasets: by rule, drop id, date and categorical columns, columns with fewer than
``min_distinct`` distinct values, then rows with missing values. Splits are 80/10/10 with a fixed
seed (scikit-learn's train_test_split twice, which reproduces Table 1's sizes) or the dataset's
official split. Features are min-max scaled on train, images standardised per channel, and
targets scaled to [0, 1] with the training minimum and maximum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from .sources.base import DataSourceError, RawData, is_text
from .split import SplitData
from .table1 import compare_with_table1

ID_NAME = re.compile(r"^(id|index|unnamed: ?\d+|.*_id|instant|row)$", re.IGNORECASE)


@dataclass
class Prepared:
    data: SplitData
    summary: dict = field(default_factory=dict)


def select_numeric_features(
    table: pd.DataFrame, targets: list[str], drop: list[str] = (), min_distinct: int = 10, dataset: str = "?"
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Apply the numeric-benchmark rules; return (features, targets, {dropped column: reason})."""
    from .sources.tables import duplicated_names

    twice = duplicated_names(table.columns)
    if twice:  # whatever the source: a second copy of a target would be kept as a feature
        raise DataSourceError(f"dataset {dataset!r}: the table names {twice}; give every column a name of its own")
    missing = [t for t in targets if t not in table.columns]
    if missing:
        raise DataSourceError(
            f"dataset {dataset!r}: target column(s) {missing} not found (config key "
            f"'datasets.{dataset}.target'); columns are {list(table.columns)}"
        )
    unknown_drop = [c for c in drop if c not in table.columns]
    if unknown_drop:
        raise DataSourceError(
            f"dataset {dataset!r}: columns to drop {unknown_drop} (config key 'datasets.{dataset}.drop') not found"
        )
    y = table[targets]
    for t in targets:
        if not pd.api.types.is_numeric_dtype(y[t]):
            converted = pd.to_numeric(y[t], errors="coerce")
            bad = y[t][converted.isna() & y[t].notna()]
            if len(bad):
                examples = ", ".join(f"{v!r} in row {i}" for i, v in bad.head(3).items())
                raise DataSourceError(
                    f"dataset {dataset!r}: target column {t!r} is not numeric: {len(bad)} of "
                    f"{int(y[t].notna().sum())} values are not numbers (e.g. {examples}; rows counted "
                    f"from 0 after the header)"
                )
            y = y.assign(**{t: converted})
    dropped: dict[str, str] = {c: "configured (datasets.*.drop)" for c in drop}
    keep = []
    for col in table.columns:
        if col in targets or col in dropped:
            continue
        s = table[col]
        if ID_NAME.match(str(col)):
            dropped[col] = "identifier"
        elif pd.api.types.is_datetime64_any_dtype(s) or (is_text(s) and _looks_like_dates(s)):
            dropped[col] = "date"
        elif not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            dropped[col] = "categorical"
        elif s.nunique(dropna=True) < min_distinct:
            dropped[col] = f"fewer than {min_distinct} distinct values"
        else:
            keep.append(col)
    if not keep:
        raise DataSourceError(f"dataset {dataset!r}: no numeric feature left after the preprocessing rules ({dropped})")
    return table[keep].astype(np.float64), y.astype(np.float64), dropped


def _looks_like_dates(s: pd.Series) -> bool:
    sample = s.dropna().astype(str).head(20)
    if sample.empty or not sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}").all():
        return False
    return pd.to_datetime(sample, errors="coerce").notna().all()


def split_indices(n: int, fractions: dict, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """80/10/10 (by default) with scikit-learn: first train vs the rest, then the rest into val and test."""
    val, test = fractions["val"], fractions["test"]
    idx = np.arange(n)
    train_idx, rest = train_test_split(idx, test_size=val + test, random_state=seed)
    val_idx, test_idx = train_test_split(rest, test_size=test / (val + test), random_state=seed)
    return np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)


def scale_targets(y_train: np.ndarray, dataset: str = "?") -> tuple[np.ndarray, np.ndarray]:
    y_min, y_max = y_train.min(0), y_train.max(0)
    constant = y_max <= y_min
    if np.any(constant):
        raise DataSourceError(
            f"dataset {dataset!r}: the target is constant on the training split "
            f"(value {y_min[constant][0]:g}): nothing to regress"
        )
    return y_min, y_max


FLOAT32 = np.float32


def float32_distinct(values: np.ndarray) -> int:
    """How many distinct values a column keeps once min-max scaled to [0, 1] and held in float32
    next to numbers of order 1 (what a network's first layer adds it to): distinct values of
    1 + x in float32, whose resolution is float32's machine epsilon, 1.2e-7."""
    lo, hi = values.min(), values.max()
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - lo) / (hi - lo)
    if not np.isfinite(scaled).all():  # the range itself overflows float64
        return 1
    return len(np.unique(FLOAT32(1) + scaled.astype(FLOAT32)))


def collapses(values: np.ndarray, min_distinct: int) -> bool:
    """Whether min-max scaling to float32 erases a column's variation: it keeps fewer distinct
    values than min(min_distinct, its distinct values), the preprocessing rule's own threshold.
    One value far outside the rest (1e30 among values of order 1) does this: the other rows all
    scale to within float32's resolution of 0, and the column is erased without a word."""
    if len(values) < 2:
        return False
    need = min(min_distinct, len(np.unique(values)))
    return need > 1 and float32_distinct(values) < need


def extreme_rows(values: np.ndarray, min_distinct: int) -> np.ndarray | None:
    """Positions of the fewest values farthest from the column's median whose removal lets the
    column survive scaling (``collapses`` false), or None if removing up to half the rows does not."""
    order = np.argsort(-np.abs(values - np.median(values)), kind="stable")
    lo, hi = 1, len(values) // 2
    if hi < 1 or collapses(np.delete(values, order[:hi]), min_distinct):
        return None
    while lo < hi:  # the smallest r whose removal is enough
        mid = (lo + hi) // 2
        if collapses(np.delete(values, order[:mid]), min_distinct):
            lo = mid + 1
        else:
            hi = mid
    return np.sort(order[:lo])


def find_extreme_values(X: pd.DataFrame, y: pd.DataFrame, min_distinct: int) -> dict[str, dict]:
    """Columns (features and targets) that min-max scaling to float32 would erase, over every row
    of every split: {column: {"role", "rows" (index labels, or None), "example", "rest"}}."""
    found = {}
    for role, frame in (("feature", X), ("target", y)):
        for column in frame.columns:
            values = frame[column].to_numpy(dtype=np.float64)
            if not collapses(values, min_distinct):
                continue
            positions = extreme_rows(values, min_distinct)
            rows = None if positions is None else frame.index[positions]
            rest = values if positions is None else np.delete(values, positions)
            example = None if positions is None else (rows[0], values[positions[0]])
            found[column] = {
                "role": role,
                "rows": rows,
                "example": example,
                "rest": (float(rest.min()), float(rest.max())),
            }
    return found


def extreme_values_error(dataset: str, found: dict[str, dict]) -> DataSourceError:
    parts = []
    for column, f in found.items():
        if f["rows"] is None:
            parts.append(
                f"{f['role']} column {column!r} has values spread so unevenly (range [{f['rest'][0]:g}, "
                f"{f['rest'][1]:g}]) that scaling it to [0, 1] in float32 erases its variation, and no few "
                f"rows are to blame"
            )
        else:
            row, value = f["example"]
            parts.append(
                f"{f['role']} column {column!r} has {len(f['rows'])} row(s) with values so far outside the rest "
                f"(e.g. {value:g} in row {row}; the other rows lie in [{f['rest'][0]:g}, {f['rest'][1]:g}]) that "
                f"scaling it to [0, 1] in float32 erases the column's variation"
            )
    droppable = all(f["rows"] is not None for f in found.values())
    what_to_do = (
        f"Correct or remove these rows, or set config key 'datasets.{dataset}.extreme_values: drop' to drop them"
        if droppable
        else f"Correct the column, or name it in config key 'datasets.{dataset}.drop'"
    )
    return DataSourceError(
        f"dataset {dataset!r}: " + "; ".join(parts) + f" (rows counted from 0 after the header). {what_to_do}."
    )


def handle_extreme_values(
    X: pd.DataFrame, y: pd.DataFrame, spec: dict, dataset: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Stop on values that do not survive scaling to float32 (config key ``extreme_values: stop``,
    the default), or drop their rows (``drop``); returns the rows dropped per column."""
    min_distinct = spec.get("min_distinct", 10)
    dropped: dict[str, int] = {}
    for _ in range(5):  # dropping rows for one column can reveal another's
        found = find_extreme_values(X, y, min_distinct)
        if not found:
            return X, y, dropped
        if spec.get("extreme_values", "stop") != "drop" or any(f["rows"] is None for f in found.values()):
            raise extreme_values_error(dataset, found)
        rows = set()
        for column, f in found.items():
            dropped[column] = dropped.get(column, 0) + len(f["rows"])
            rows.update(f["rows"])
        keep = ~X.index.isin(list(rows))
        X, y = X[keep], y[keep]
    raise extreme_values_error(dataset, find_extreme_values(X, y, min_distinct))


def check_float32(data: SplitData, features: list[str], targets: list[str], dataset: str) -> None:
    """Every prepared value must be finite in float32, the dtype training uses; a last guard
    behind ``handle_extreme_values``."""
    for split in ("train", "val", "test"):
        for kind, names in (("X", features), ("y", targets)):
            values = getattr(data, f"{kind}_{split}")
            with np.errstate(over="ignore"):
                bad = ~np.isfinite(values.astype(FLOAT32))
            if bad.any():
                columns = np.flatnonzero(bad.reshape(len(values), -1).any(0))
                name = names[columns[0]] if names and columns[0] < len(names) else f"#{columns[0]}"
                raise DataSourceError(
                    f"dataset {dataset!r}: {int(bad.reshape(len(values), -1).any(1).sum())} {split} row(s) "
                    f"of {'target' if kind == 'y' else 'feature'} column {name!r} do not survive scaling to "
                    f"float32 (beyond {np.finfo(FLOAT32).max:.3g}). Correct or remove these rows"
                )


def minimum_rows(split: dict) -> int:
    """Rows a train/val/test split needs: at least 3 in the smaller of validation and test."""
    return max(10, int(np.ceil(3 / min(split["val"], split["test"]))))


def prepare_tabular(raw: RawData, spec: dict, split: dict, dataset: str = "?") -> Prepared:
    minimum = minimum_rows(split)
    if len(raw.table) < minimum:  # before the column rules, which would blame the features
        what = "has no data rows, only a header" if len(raw.table) == 0 else f"has {len(raw.table)} rows"
        raise DataSourceError(
            f"dataset {dataset!r}: {raw.description or 'the table'} {what}: too few for a train/val/test "
            f"split (need {minimum})"
        )
    X, y, dropped = select_numeric_features(
        raw.table, raw.targets, spec.get("drop", []), spec.get("min_distinct", 10), dataset
    )
    before = len(X)
    complete = (
        X.notna().all(axis=1)
        & y.notna().all(axis=1)
        & np.isfinite(X.to_numpy()).all(axis=1)
        & np.isfinite(y.to_numpy()).all(axis=1)
    )
    X, y = X[complete], y[complete]
    missing = int(before - len(X))
    if spec.get("target_transform") == "log":
        if (y <= 0).any().any():
            raise DataSourceError(
                f"dataset {dataset!r}: config key 'datasets.{dataset}.target_transform' is 'log', "
                f"but the target has values <= 0 (min {y.min().min():g})"
            )
        y = np.log(y)
    X, y, extreme = handle_extreme_values(X, y, spec, dataset)
    if len(X) < minimum:
        raise DataSourceError(
            f"dataset {dataset!r}: {len(X)} complete rows is too few for a train/val/test split (need {minimum})"
        )
    tr, va, te = split_indices(len(X), split, split["seed"])
    Xn, yn = X.to_numpy(), y.to_numpy()
    scaler = MinMaxScaler().fit(Xn[tr])
    y_min, y_max = scale_targets(yn[tr], dataset)
    s = lambda a: (a - y_min) / (y_max - y_min)  # noqa: E731
    data = SplitData(
        scaler.transform(Xn[tr]),
        s(yn[tr]),
        scaler.transform(Xn[va]),
        s(yn[va]),
        scaler.transform(Xn[te]),
        s(yn[te]),
        y_min,
        y_max,
    )
    check_float32(data, list(X.columns), list(y.columns), dataset)
    summary = {
        "features": list(X.columns),
        "targets": list(y.columns),
        "dropped_columns": dropped,
        "rows_with_missing_values_dropped": missing,
        "rows_with_extreme_values_dropped": extreme,
        "target_transform": spec.get("target_transform", "none"),
    }
    return Prepared(data, summary)


def prepare_images(raw: RawData, spec: dict, dataset: str = "?") -> Prepared:
    """Official split; [n, H, W, C] uint8 -> [n, C, H, W] standardised per channel with train statistics."""
    imgs = {k: np.asarray(v, dtype=np.float64) / 255.0 for k, v in raw.images.items()}
    if imgs["train"].ndim == 3:
        imgs = {k: v[..., None] for k, v in imgs.items()}
    mean = imgs["train"].mean(axis=(0, 1, 2))
    std = imgs["train"].std(axis=(0, 1, 2))
    std = np.where(std > 0, std, 1.0)
    X = {k: ((v - mean) / std).transpose(0, 3, 1, 2).astype(np.float32) for k, v in imgs.items()}
    y = {k: np.asarray(v, dtype=np.float64).reshape(len(v), -1) for k, v in raw.image_targets.items()}
    for column in range(y["train"].shape[1]):
        values = np.concatenate([v[:, column] for v in y.values()])
        if collapses(values, spec.get("min_distinct", 10)):
            raise DataSourceError(
                f"dataset {dataset!r}: the target ({raw.targets[0] if raw.targets else column}) has values so "
                f"far outside the rest (range [{values.min():g}, {values.max():g}]) that scaling it to [0, 1] "
                f"in float32 erases its variation. Correct the labels"
            )
    y_min, y_max = scale_targets(y["train"], dataset)
    s = lambda a: (a - y_min) / (y_max - y_min)  # noqa: E731
    data = SplitData(X["train"], s(y["train"]), X["val"], s(y["val"]), X["test"], s(y["test"]), y_min, y_max)
    return Prepared(data, {"channel_mean": mean.tolist(), "channel_std": std.tolist(), "targets": raw.targets})


def prepare(raw: RawData, spec: dict, split: dict, dataset: str = "?") -> Prepared:
    prepared = prepare_images(raw, spec, dataset) if raw.official_split else prepare_tabular(raw, spec, split, dataset)
    d = prepared.data
    for name, values in (("validation", d.y_val), ("test", d.y_test)):
        if np.any(values.max(0) <= values.min(0)):  # R^2 would divide by zero
            raise DataSourceError(
                f"dataset {dataset!r}: the target is constant on the {name} split ({len(values)} rows): "
                f"R^2 is undefined there. Use more rows or another split (config key 'split')"
            )
    prepared.summary.update(
        {
            "dataset": dataset,
            "code": spec.get("code", dataset),
            "source": spec.get("source"),
            "description": raw.description,
            "split": "official"
            if raw.official_split
            else f"{split['train']:.0%}/{split['val']:.0%}/{split['test']:.0%} seed {split['seed']}",
            "rows": {"train": len(d.y_train), "val": len(d.y_val), "test": len(d.y_test)},
            "feature_shape": list(d.X_train.shape[1:]),
            "target_dimension": d.m,
            "target_min": d.y_min.tolist(),
            "target_max": d.y_max.tolist(),
        }
    )
    table1 = compare_with_table1(prepared.summary["code"], prepared.summary["rows"], prepared.summary["feature_shape"])
    if table1 is not None:
        prepared.summary["table1"] = table1
    return prepared


def save_prepared(prepared: Prepared, npz_path, json_path) -> None:
    from ..io import atomic_save_npz, atomic_write_json

    d = prepared.data
    atomic_save_npz(npz_path, **{f: getattr(d, f) for f in SplitData.__dataclass_fields__})
    atomic_write_json(json_path, prepared.summary)


def prepare_dataset(key: str, spec: dict, split: dict, cache_dir, npz_path, json_path, log=print) -> Prepared:
    """The prepare rule: load (after checking the raw files' checksums), prepare, then write both
    outputs. Any error comes before the first write, so a failure leaves no output behind."""
    from .sources import load_verified

    raw, checks = load_verified(key, spec, cache_dir)
    for c in checks:
        log(
            f"{key}: {c.path}: sha256 {c.sha256} "
            + (f"(matches {c.recorded_by})" if c.state == "verified" else "(no checksum recorded: taken as it is)")
        )
    prepared = prepare(raw, spec, split, key)
    for column, rows in prepared.summary.get("rows_with_extreme_values_dropped", {}).items():
        log(
            f"{key}: dropped {rows} row(s) with extreme values in column {column!r} (config key "
            f"'datasets.{key}.extreme_values: drop')"
        )
    prepared.summary["raw_files"] = [{"path": str(c.path), "sha256": c.sha256, "state": c.state} for c in checks]
    save_prepared(prepared, npz_path, json_path)
    return prepared
