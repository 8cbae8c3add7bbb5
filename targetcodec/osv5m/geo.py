"""Geolocation metrics for OpenStreetView-5M (Astruc et al., 2024), beside the paper's MAE, rMSE and R^2.

None of the paper's tables has them; they are the metrics of OSV5M and of Dufour et al. (2024):
great-circle error in km (haversine, Earth radius 6371 km), GeoScore 5000 exp(-d / 1492.7) and the
accuracy within 1, 25, 200, 750 and 2,500 km. Coordinates are (latitude, longitude) in degrees.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0
GEOSCORE_SCALE_KM = 1492.7
ACCURACY_THRESHOLDS_KM = (1, 25, 200, 750, 2500)


def haversine_km(a, b) -> np.ndarray:
    """Great-circle distance between points ``a`` and ``b`` ([..., 2] latitude, longitude in degrees), in km."""
    a, b = np.radians(np.asarray(a, dtype=np.float64)), np.radians(np.asarray(b, dtype=np.float64))
    dlat, dlon = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
    h = np.sin(dlat / 2) ** 2 + np.cos(a[..., 0]) * np.cos(b[..., 0]) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def geoscore(distance_km) -> np.ndarray:
    """GeoScore of one prediction, 5000 exp(-d / 1492.7) (0 to 5000 points, as in GeoGuessr)."""
    return 5000.0 * np.exp(-np.asarray(distance_km, dtype=np.float64) / GEOSCORE_SCALE_KM)


def accuracy_within(distance_km, threshold_km: float) -> float:
    """Fraction of predictions within ``threshold_km`` of the truth (inclusive)."""
    return float(np.mean(np.asarray(distance_km) <= threshold_km))


def geolocation_metrics(true_latlon, pred_latlon, prefix: str = "") -> dict[str, float]:
    """Median and mean error (km), mean GeoScore and the accuracies within each threshold."""
    d = haversine_km(true_latlon, pred_latlon)
    out = {
        f"{prefix}median_km": float(np.median(d)),
        f"{prefix}mean_km": float(np.mean(d)),
        f"{prefix}geoscore": float(np.mean(geoscore(d))),
    }
    for t in ACCURACY_THRESHOLDS_KM:
        out[f"{prefix}acc_{t}km"] = accuracy_within(d, t)
    return out
