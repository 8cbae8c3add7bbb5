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

from .split import SplitData
from .table1 import compare_with_table1
from .sources.base import DataSourceError, RawData, is_text

ID_NAME = re.compile(r"^(id|index|unnamed: ?\d+|.*_id|instant|row)$", re.IGNORECASE)


@dataclass
class Prepared:
    data: SplitData
    summary: dict = field(default_factory=dict)


def select_numeric_features(table: pd.DataFrame, targets: list[str], drop: list[str] = (), min_distinct: int = 10,
                            dataset: str = "?") -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Apply the numeric-benchmark rules; return (features, targets, {dropped column: reason})."""
    missing = [t for t in targets if t not in table.columns]
    if missing:
        raise DataSourceError(f"dataset {dataset!r}: target column(s) {missing} not found (config key "
                              f"'datasets.{dataset}.target'); columns are {list(table.columns)}")
    unknown_drop = [c for c in drop if c not in table.columns]
    if unknown_drop:
        raise DataSourceError(f"dataset {dataset!r}: columns to drop {unknown_drop} (config key 'datasets.{dataset}.drop') not found")
    y = table[targets]
    for t in targets:
        if not pd.api.types.is_numeric_dtype(y[t]):
            converted = pd.to_numeric(y[t], errors="coerce")
            if converted.notna().sum() < y[t].notna().sum():
                raise DataSourceError(f"dataset {dataset!r}: target column {t!r} is not numeric (e.g. {y[t].dropna().iloc[0]!r})")
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
        raise DataSourceError(f"dataset {dataset!r}: the target is constant on the training split "
                              f"(value {y_min[constant][0]:g}): nothing to regress")
    return y_min, y_max


def prepare_tabular(raw: RawData, spec: dict, split: dict, dataset: str = "?") -> Prepared:
    X, y, dropped = select_numeric_features(raw.table, raw.targets, spec.get("drop", []), spec.get("min_distinct", 10), dataset)
    before = len(X)
    complete = X.notna().all(axis=1) & y.notna().all(axis=1) & np.isfinite(X.to_numpy()).all(axis=1) & np.isfinite(y.to_numpy()).all(axis=1)
    X, y = X[complete], y[complete]
    if spec.get("target_transform") == "log":
        if (y <= 0).any().any():
            raise DataSourceError(f"dataset {dataset!r}: config key 'datasets.{dataset}.target_transform' is 'log', "
                                  f"but the target has values <= 0 (min {y.min().min():g})")
        y = np.log(y)
    minimum = max(10, int(np.ceil(3 / min(split["val"], split["test"]))))
    if len(X) < minimum:
        raise DataSourceError(f"dataset {dataset!r}: {len(X)} complete rows is too few for a train/val/test split (need {minimum})")
    tr, va, te = split_indices(len(X), split, split["seed"])
    Xn, yn = X.to_numpy(), y.to_numpy()
    scaler = MinMaxScaler().fit(Xn[tr])
    y_min, y_max = scale_targets(yn[tr], dataset)
    s = lambda a: (a - y_min) / (y_max - y_min)  # noqa: E731
    data = SplitData(scaler.transform(Xn[tr]), s(yn[tr]), scaler.transform(Xn[va]), s(yn[va]), scaler.transform(Xn[te]), s(yn[te]), y_min, y_max)
    summary = {
        "features": list(X.columns),
        "targets": list(y.columns),
        "dropped_columns": dropped,
        "rows_with_missing_values_dropped": int(before - len(X)),
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
    y_min, y_max = scale_targets(y["train"], dataset)
    s = lambda a: (a - y_min) / (y_max - y_min)  # noqa: E731
    data = SplitData(X["train"], s(y["train"]), X["val"], s(y["val"]), X["test"], s(y["test"]), y_min, y_max)
    return Prepared(data, {"channel_mean": mean.tolist(), "channel_std": std.tolist(), "targets": raw.targets})


def prepare(raw: RawData, spec: dict, split: dict, dataset: str = "?") -> Prepared:
    prepared = prepare_images(raw, spec, dataset) if raw.official_split else prepare_tabular(raw, spec, split, dataset)
    d = prepared.data
    prepared.summary.update({
        "dataset": dataset,
        "code": spec.get("code", dataset),
        "source": spec.get("source"),
        "description": raw.description,
        "split": "official" if raw.official_split else f"{split['train']:.0%}/{split['val']:.0%}/{split['test']:.0%} seed {split['seed']}",
        "rows": {"train": len(d.y_train), "val": len(d.y_val), "test": len(d.y_test)},
        "feature_shape": list(d.X_train.shape[1:]),
        "target_dimension": d.m,
        "target_min": d.y_min.tolist(),
        "target_max": d.y_max.tolist(),
    })
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
        log(f"{key}: {c.path}: sha256 {c.sha256} " + (f"(matches {c.recorded_by})" if c.state == "verified" else
                                                      "(no checksum recorded: taken as it is)"))
    prepared = prepare(raw, spec, split, key)
    prepared.summary["raw_files"] = [{"path": str(c.path), "sha256": c.sha256, "state": c.state} for c in checks]
    save_prepared(prepared, npz_path, json_path)
    return prepared
