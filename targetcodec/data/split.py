"""The prepared data every method trains on; numpy only, so that jobs without training skip torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SplitData:
    """A prepared dataset: features and [0, 1]-scaled targets per split, and the target scale."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    y_min: np.ndarray  # [m], original units
    y_max: np.ndarray

    @property
    def m(self) -> int:
        return self.y_train.shape[1]

    @classmethod
    def load(cls, path) -> SplitData:
        """A prepared .npz (rule prepare); a damaged one raises DamagedFile naming it."""
        from ..io import load_npz

        return cls(**load_npz(path, list(cls.__dataclass_fields__)))
