"""Order statistics used by the report: medians, spread, percentiles.

Pure functions on lists of floats; no I/O.
"""

import math


def percentile(sorted_values, p):
    """Nearest-rank percentile (p in [0, 100]) of an ascending list.

    Returns None for an empty list.
    """
    if not sorted_values:
        return None
    if p <= 0:
        return sorted_values[0]
    rank = math.ceil(p / 100.0 * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(1, rank)) - 1]


def median(values):
    """Median of the values (mean of the middle two for an even count)."""
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    if len(v) % 2:
        return v[mid]
    return (v[mid - 1] + v[mid]) / 2.0


def spread(values):
    """(min, max) and the relative spread (max - min) / median, in percent."""
    v = [x for x in values if x is not None]
    if not v:
        return None, None, None
    m = median(v)
    rel = (max(v) - min(v)) / m * 100.0 if m else 0.0
    return min(v), max(v), rel


def ratio(offload, kernel):
    """offload / kernel, or None if either is missing or kernel is zero."""
    if offload is None or kernel in (None, 0):
        return None
    return offload / kernel


# Points of the latency percentile curves in the plots: dense in the tail.
CURVE_PERCENTILES = [
    1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 98, 99, 99.5,
    99.7, 99.8, 99.9, 99.95, 99.97, 99.99, 99.995, 99.999,
]


def curve(sorted_values):
    """[(p, latency)] at CURVE_PERCENTILES for an ascending list."""
    return [(p, percentile(sorted_values, p)) for p in CURVE_PERCENTILES
            if sorted_values]
