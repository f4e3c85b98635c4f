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

    ``categorical`` is true when any value in either window is a string or a bool. A categorical
    feature's values are integer codes into ``categories`` (sorted labels; numbers among them become
    their JSON text, "1", "2.5"), so the statistics count small integers rather than sort strings.
    """

    feature: str
    categorical: bool
    reference: np.ndarray
    current: np.ndarray
    categories: tuple[str, ...] = ()


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


NUMBER_TYPES = frozenset({int, float})


def _as_category(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _labels(values: list[Any], types: set[type]) -> list[Any]:
    return values if types == {str} else [_as_category(v) for v in values]


def _categorical_sample(
    name: str, reference: list[Any], current: list[Any], reference_types: set[type], current_types: set[type]
) -> FeatureSample:
    reference, current = _labels(reference, reference_types), _labels(current, current_types)
    categories = tuple(sorted(set(reference) | set(current)))
    codes = {category: code for code, category in enumerate(categories)}

    def encode(values: list[str]) -> np.ndarray:
        return np.fromiter(map(codes.__getitem__, values), dtype=np.int64, count=len(values))

    return FeatureSample(name, True, encode(reference), encode(current), categories)


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
        # type() not isinstance(): bool is an int subclass but a category here.
        reference_types, current_types = set(map(type, reference_values)), set(map(type, current_values))
        if not (reference_types | current_types) <= NUMBER_TYPES:
            samples.append(_categorical_sample(name, reference_values, current_values, reference_types, current_types))
        else:
            samples.append(
                FeatureSample(
                    name,
                    False,
                    np.asarray(reference_values, dtype=np.float64),
                    np.asarray(current_values, dtype=np.float64),
                )
            )
    return samples
