"""Webhook filters: which events a webhook receives beyond its types and project.

A filter is a JSON object whose keys are dotted paths into the event as webhooks receive it
(``type``, ``project_id``, ``data.<field>[.<field>...]``) and whose values are either a value (equality)
or an operator object; every condition must hold (AND). ``$or`` and ``$and`` at a filter's top level take
a list of filters, which may nest (at most ``MAX_DEPTH`` levels, ``MAX_CONDITIONS`` conditions in all)::

    {"type": "threshold.breached", "data.severity": {"$gte": "error"}, "data.model": {"$glob": "fraud-*"},
     "$or": [{"project_id": "payments"}, {"data.value": {"$gt": 1000}}]}

Operators::

    $eq $ne            a scalar (string, number, boolean, null)
    $in $nin           a list of 1 to 100 scalars
    $gt $gte $lt $lte  a number; on a severity path a severity name, ordered info < warning < error < critical
    $exists            true or false
    $glob              a string, fnmatch-style: * any run, ? one character, [...] a class ([!...] negated)

A path that crosses a list (``data.features.feature``) or ends at one looks at every element: a
condition holds when any element satisfies it, and ``$ne`` / ``$nin`` when none is the value. A path the
event does not have satisfies only ``$exists: false``, ``$ne`` and ``$nin``.

``compile_filter`` checks a filter and returns the ``Filter`` that evaluates it (``Filter.matches``).
With ``event_types`` (a webhook's subscription) it also checks the filter against the event catalog: a
path none of those types has, an operator on the wrong kind of value (``$gt`` on a string, ``$glob`` on a
number), or a value outside a field's fixed set of values is an error. Errors are ``FilterInvalid``,
each located relative to the filter: ``("$or", 1, "data.model")``.

Pure: no I/O. The API validates filters with it and the webhook dispatcher evaluates them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from store.event_paths import SEVERITY_RANK, PathCatalog, PathKind, any_kind

MAX_CONDITIONS = 50
MAX_DEPTH = 4  # the top-level filter is depth 1; each $or / $and list nests one deeper
MAX_LIST_VALUES = 100  # $in / $nin
MAX_PATH_LENGTH = 256
MAX_GLOB_LENGTH = 256

# The catalog's scale, lowest first: info < warning < error < critical.

ROOTS = ("type", "project_id", "data")
EQUALITY = ("$eq", "$ne", "$in", "$nin")
ORDER = ("$gt", "$gte", "$lt", "$lte")
OPERATORS = (*EQUALITY, *ORDER, "$exists", "$glob")
COMBINATORS = ("$or", "$and")

Location = tuple[str | int, ...]
Envelope = dict[str, Any]
_Test = Callable[[Envelope], bool]


class FilterInvalid(ValueError):
    """A filter that cannot be used; ``errors`` are (location within the filter, message) pairs."""

    def __init__(self, errors: Sequence[tuple[Location, str]]):
        self.errors = list(errors)
        super().__init__("; ".join(f"{_where(loc)}: {message}" for loc, message in self.errors))


def _where(location: Location) -> str:
    path = "filter"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


@dataclass(frozen=True)
class Filter:
    """A compiled filter: ``matches(envelope)`` says whether an event (its wire form) passes."""

    source: dict[str, Any]
    conditions: int
    _test: _Test = field(repr=False, compare=False)

    def matches(self, envelope: Envelope) -> bool:
        return self._test(envelope)


def compile_filter(source: Any, event_types: Iterable[str] | None = None) -> Filter:
    """Check ``source`` and compile it; ``event_types``: also check it against those types' catalog entries.

    Raises ``FilterInvalid`` naming every problem found (it stops at the condition past ``MAX_CONDITIONS``).

    Example:
        ```python
        flt = compile_filter({"data.severity": {"$gte": "error"}}, ["threshold.breached"])
        flt.matches({"type": "threshold.breached", "data": {"severity": "critical"}})  # True
        ```
    """
    catalog = PathCatalog(list(event_types)) if event_types is not None else None
    compiler = _Compiler(catalog)
    if not isinstance(source, dict):
        raise FilterInvalid([((), "a filter is a JSON object")])
    test = compiler.filter(source, (), 1)
    if compiler.errors:
        raise FilterInvalid(compiler.errors)
    return Filter(source, compiler.conditions, test)


# --- compiling -------------------------------------------------------------------------------------


class _Stop(Exception):
    """Past the conditions' limit, or enough errors found: the rest of the filter is not looked at."""


MAX_ERRORS = 20


class _Compiler:
    def __init__(self, catalog: PathCatalog | None):
        self.catalog = catalog
        self.errors: list[tuple[Location, str]] = []
        self.conditions = 0

    def error(self, location: Location, message: str) -> None:
        self.errors.append((location, message))
        if len(self.errors) >= MAX_ERRORS:
            raise _Stop

    def filter(self, source: dict[str, Any], location: Location, depth: int) -> _Test:
        tests: list[_Test] = []
        try:
            for key, value in source.items():
                if key in COMBINATORS:
                    tests.append(self.combinator(key, value, (*location, key), depth))
                elif key.startswith("$"):
                    self.error(
                        (*location, key),
                        f"{key} is not allowed here: a filter's keys are paths (type, project_id, data.<field>), "
                        "$or or $and",
                    )
                else:
                    tests.append(self.path(key, value, (*location, key)))
        except _Stop:
            if location:
                raise
        return _all(tests)

    def combinator(self, key: str, value: Any, location: Location, depth: int) -> _Test:
        if depth >= MAX_DEPTH:
            self.error(location, f"filters nest at most {MAX_DEPTH} deep: {key} here would be level {depth + 1}")
            return _never
        if not isinstance(value, list) or not value:
            self.error(location, f"{key} takes a non-empty list of filters")
            return _never
        tests = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or not item:
                self.error((*location, index), "each filter of the list is a non-empty JSON object")
                continue
            tests.append(self.filter(item, (*location, index), depth + 1))
        return _any(tests) if key == "$or" else _all(tests)

    def count(self, location: Location) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            self.error(
                location, f"a filter has at most {MAX_CONDITIONS} conditions; this is condition {self.conditions}"
            )
            raise _Stop

    def path(self, path: str, value: Any, location: Location) -> _Test:
        self.count(location)  # a path is one condition, or as many as its operators
        segments = _segments(path)
        if isinstance(segments, str):
            self.error(location, segments)
            return _never
        kind = self.catalog.kind(segments) if self.catalog is not None else any_kind()
        if isinstance(kind, str):
            self.error(location, kind)
            kind = any_kind()  # still check the operators' operands
        if isinstance(value, dict):
            if not value:
                self.error(location, f"an operator object needs at least one operator: {', '.join(OPERATORS)}")
                return _never
            plain = [name for name in value if not name.startswith("$")]
            if plain:
                self.error(
                    location,
                    f"an object here holds operators ({', '.join(OPERATORS)}), not fields: name a nested field "
                    f"with its dotted path ({path}.{plain[0]})",
                )
                return _never
            tests = []
            for index, (operator, operand) in enumerate(value.items()):
                if index:
                    self.count(location)
                tests.append(self.operator(segments, kind, operator, operand, location))
            return _all(tests)
        return self.operator(segments, kind, "$eq", value, location, implicit=True)

    def operator(
        self,
        segments: tuple[str, ...],
        kind: PathKind,
        operator: str,
        operand: Any,
        location: Location,
        implicit: bool = False,
    ) -> _Test:
        def fail(message: str) -> _Test:
            self.error(location, message if implicit else f"{operator}: {message}")
            return _never

        if operator in ("$eq", "$ne"):
            problem = _scalar_problem(operand, kind)
            if problem:
                return fail(problem)
            return _condition(segments, operator, _equals(operand))
        if operator in ("$in", "$nin"):
            if not isinstance(operand, list) or not 1 <= len(operand) <= MAX_LIST_VALUES:
                return fail(f"takes a list of 1 to {MAX_LIST_VALUES} values")
            for index, item in enumerate(operand):
                problem = _scalar_problem(item, kind)
                if problem:
                    return fail(f"[{index}] {problem}")
            return _condition(segments, operator, _one_of(operand))
        if operator in ORDER:
            return self.order(segments, kind, operator, operand, fail)
        if operator == "$exists":
            if not isinstance(operand, bool):
                return fail("takes true or false")
            return _exists(segments, operand)
        if operator == "$glob":
            if not isinstance(operand, str) or not operand:
                return fail("takes a non-empty string pattern (* ? [...])")
            problem = glob_problem(operand)
            if problem:
                return fail(problem)
            if not kind.any and not (kind.strings or kind.severity):
                return fail(f"matches strings; this path holds {kind.describe()}")
            regex = re.compile(fnmatch.translate(operand))
            return _condition(
                segments, operator, lambda value: isinstance(value, str) and regex.match(value) is not None
            )
        return fail(f"unknown operator {operator}; use one of {', '.join(OPERATORS)}")

    def order(
        self, segments: tuple[str, ...], kind: PathKind, operator: str, operand: Any, fail: Callable[[str], _Test]
    ) -> _Test:
        compare = _COMPARE[operator]
        if isinstance(operand, bool) or operand is None or not isinstance(operand, int | float | str):
            return fail("takes a number (or, on a severity, a severity name)")
        if isinstance(operand, str):
            if operand not in SEVERITY_RANK:
                return fail(f"compares numbers, or severities by name: {', '.join(SEVERITY_RANK)}")
            if not kind.any and not kind.severity:
                return fail(f"a severity name compares only with a severity; this path holds {kind.describe()}")
            rank = SEVERITY_RANK[operand]
            return _condition(
                segments,
                operator,
                lambda value: isinstance(value, str) and value in SEVERITY_RANK and compare(SEVERITY_RANK[value], rank),
            )
        if not kind.any and not kind.number:
            return fail(f"compares numbers; this path holds {kind.describe()}")
        return _condition(
            segments,
            operator,
            lambda value: isinstance(value, int | float) and not isinstance(value, bool) and compare(value, operand),
        )


def _segments(path: str) -> tuple[str, ...] | str:
    """The path's fields, or why it is not a path."""
    if len(path) > MAX_PATH_LENGTH:
        return f"a path is at most {MAX_PATH_LENGTH} characters"
    segments = tuple(path.split("."))
    if any(not segment for segment in segments):
        return "a path is field names joined by dots (data.model), none of them empty"
    if segments[0] not in ROOTS or (segments[0] != "data" and len(segments) > 1):
        return "unknown path: a filter names type, project_id or data.<field>"
    return segments


def _scalar_problem(operand: Any, kind: PathKind) -> str | None:
    if operand is None:
        return None
    if isinstance(operand, bool):
        ok = kind.boolean
    elif isinstance(operand, int | float):
        ok = kind.number
    elif isinstance(operand, str):
        if kind.enum is not None and operand not in kind.enum and not kind.any:
            return f"{operand!r} is none of this path's values: {', '.join(sorted(kind.enum))}"
        ok = kind.strings or kind.severity
    else:
        return "compares a single value (a string, number, boolean or null); use $in for several"
    if ok or kind.any:
        return None
    return f"{_describe(operand)} never equals {kind.describe()}, what this path holds"


def _describe(operand: Any) -> str:
    if isinstance(operand, bool):
        return "a boolean"
    return "a number" if isinstance(operand, int | float) else "a string"


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable glob (an unbalanced or empty bracket, a reversed range), or ``None``."""
    if len(pattern) > MAX_GLOB_LENGTH:
        return f"a pattern is at most {MAX_GLOB_LENGTH} characters"
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "]":
            return f"']' at position {i} closes no '[' (match a literal ']' with []])"
        if char != "[":
            i += 1
            continue
        j = i + 1
        if j < n and pattern[j] == "!":
            j += 1
        if j < n and pattern[j] == "]":  # a ']' first in the class is literal
            j += 1
        while j < n and pattern[j] != "]":
            j += 1
        if j >= n:
            return f"'[' at position {i} is never closed (match a literal '[' with [[])"
        body = pattern[i + 1 : j].removeprefix("!")
        k = 0
        while k + 2 < len(body):
            if body[k + 1] == "-" and body[k] > body[k + 2]:
                return f"the range {body[k : k + 3]!r} at position {i} is reversed"
            k += 3 if body[k + 1] == "-" else 1
        i = j + 1
    return None


def path_problem(path: Any, event_types: Iterable[str]) -> str | None:
    """Why ``path`` is not a dotted path that one of ``event_types`` has (the filters' catalog check), or ``None``.

    What a webhook's ``throttle.group_by`` entries are checked with.
    """
    if not isinstance(path, str):
        return "a path is a string (data.model)"
    segments = _segments(path)
    if isinstance(segments, str):
        return segments
    kind = PathCatalog(list(event_types)).kind(segments)
    return kind if isinstance(kind, str) else None


def path_values(envelope: Envelope, path: str) -> tuple[bool, list[Any]]:
    """Whether the event (its wire form) has the dotted ``path``, and the values there (a list's elements
    in its place), as filters resolve it."""
    return _resolve(envelope, tuple(path.split(".")))


# --- evaluating ------------------------------------------------------------------------------------


def _resolve(envelope: Envelope, segments: tuple[str, ...]) -> tuple[bool, list[Any]]:
    """Whether the path is there, and the values it holds (a list's elements in its place)."""
    current: list[Any] = [envelope]
    for segment in segments:
        found: list[Any] = []
        for value in current:
            if isinstance(value, dict):
                if segment in value:
                    found.append(value[segment])
            elif isinstance(value, list):
                found += [item[segment] for item in value if isinstance(item, dict) and segment in item]
        if not found:
            return False, []
        current = found
    values: list[Any] = []
    for value in current:
        if isinstance(value, list):
            values += value
        else:
            values.append(value)
    return True, values


def _same(value: Any, operand: Any) -> bool:
    """JSON equality of a value and a scalar: true is not 1, 1 is 1.0."""
    if operand is None:
        return value is None
    if isinstance(operand, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(operand, bool) and value is operand
    if isinstance(operand, int | float):
        return isinstance(value, int | float) and value == operand
    return isinstance(value, str) and value == operand


def _equals(operand: Any) -> Callable[[Any], bool]:
    return lambda value: _same(value, operand)


def _one_of(operands: list[Any]) -> Callable[[Any], bool]:
    return lambda value: any(_same(value, operand) for operand in operands)


def _condition(segments: tuple[str, ...], operator: str, test: Callable[[Any], bool]) -> _Test:
    if operator in ("$ne", "$nin"):  # none of the values is (one of) the operand(s); a missing path passes

        def negated(envelope: Envelope) -> bool:
            _, values = _resolve(envelope, segments)
            return not any(test(value) for value in values)

        return negated

    def holds(envelope: Envelope) -> bool:
        _, values = _resolve(envelope, segments)
        return any(test(value) for value in values)

    return holds


def _exists(segments: tuple[str, ...], wanted: bool) -> _Test:
    return lambda envelope: _resolve(envelope, segments)[0] is wanted


def _all(tests: list[_Test]) -> _Test:
    if len(tests) == 1:
        return tests[0]
    return lambda envelope: all(test(envelope) for test in tests)


def _any(tests: list[_Test]) -> _Test:
    return lambda envelope: any(test(envelope) for test in tests)


def _never(envelope: Envelope) -> bool:  # noqa: ARG001 (only reached in a filter that failed to compile)
    return False


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
