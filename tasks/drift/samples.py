"""Turn windows of inference-log feature dicts into one pair of numpy samples per feature."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureSample:
    """One feature's values in both windows; nulls and absent keys are dropped.

    ``categorical`` is true when any value in either window is a string or a bool; numbers in a
    categorical feature then become their JSON text ("1", "2.5") so both windows share one alphabet.
    """

    feature: str
    categorical: bool
    reference: np.ndarray
    current: np.ndarray


def collect_columns(rows: Iterable[dict[str, Any]], names: set[str] | None = None) -> dict[str, list[Any]]:
    """Group feature values by name in one pass, skipping nulls (and names outside ``names``)."""
    columns: dict[str, list[Any]] = {}
    for features in rows:
        for name, value in features.items():
            if value is None or (names is not None and name not in names):
                continue
            column = columns.get(name)
            if column is None:
                column = columns[name] = []
            column.append(value)
    return columns


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_category(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _to_array(values: list[Any], categorical: bool) -> np.ndarray:
    if categorical:
        return np.array([_as_category(v) for v in values], dtype=object)
    return np.asarray(values, dtype=np.float64)


def feature_samples(
    reference: dict[str, list[Any]], current: dict[str, list[Any]], features: list[str] | None = None
) -> list[FeatureSample]:
    """Pair the columns of both windows, in ``features`` order or sorted by name.

    A feature missing from either window (no non-null value) cannot be compared and is left out.
    """
    names = features if features is not None else sorted(reference.keys() & current.keys())
    samples = []
    for name in names:
        reference_values, current_values = reference.get(name), current.get(name)
        if not reference_values or not current_values:
            continue
        categorical = not (
            all(_is_number(v) for v in reference_values) and all(_is_number(v) for v in current_values)
        )
        samples.append(
            FeatureSample(
                name, categorical, _to_array(reference_values, categorical), _to_array(current_values, categorical)
            )
        )
    return samples
