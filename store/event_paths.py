"""What each dotted path of an event holds, for the event types a webhook subscribes to.

``type``, ``project_id`` and ``data.<field>...`` paths are looked up in the catalog's JSON Schemas of the
types' ``data`` (``store.event_catalog``); a path's ``PathKind`` says which kinds of value it may hold
(strings, and from which fixed set; numbers; severities; ...). ``store.event_filters`` checks filters
with it, ``store.throttles`` a throttle's ``group_by``. Pure: no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from store.event_catalog import BY_TYPE, SEVERITIES

SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(reversed(SEVERITIES))}


@dataclass
class PathKind:
    """What a path may hold, over the subscribed types that have it."""

    strings: bool = False  # a string of no fixed set, or of ``enum``
    number: bool = False
    boolean: bool = False
    severity: bool = False
    null: bool = False
    object: bool = False
    any: bool = False  # a free-form field (``recommendation.created``'s ``details``): anything goes
    enum: set[str] | None = None  # the strings it may hold, when every string of it is from a fixed set
    free_strings: bool = False

    def add_enum(self, values: Iterable[str]) -> None:
        if not self.free_strings:
            self.enum = (self.enum or set()) | set(values)

    def add_free_strings(self) -> None:
        self.free_strings, self.enum = True, None

    def describe(self) -> str:
        kinds = [
            name
            for name, present in (
                ("severities", self.severity),
                ("strings", self.strings),
                ("numbers", self.number),
                ("booleans", self.boolean),
                ("objects or lists", self.object),
            )
            if present
        ]
        return " or ".join(kinds) or "only null"


def any_kind() -> PathKind:
    return PathKind(any=True)


class PathCatalog:
    """The paths of the envelope and of the ``data`` of some event types (their JSON Schemas)."""

    def __init__(self, event_types: list[str]):
        self.types = [t for t in dict.fromkeys(event_types) if t in BY_TYPE]

    def kind(self, segments: tuple[str, ...]) -> PathKind | str:
        """What the path holds, or why no subscribed type has it."""
        root = segments[0]
        if root == "type":
            kind = PathKind(strings=True)
            kind.add_enum(self.types)
            return kind
        if root == "project_id":
            kind = PathKind(strings=True, null=True)
            kind.add_free_strings()
            return kind
        kind, found = PathKind(), False
        for event_type in self.types:
            schema = _data_schema(event_type)
            leaves = _lookup(schema, schema.get("$defs", {}), segments[1:])
            for leaf in leaves:
                _add_kind(kind, leaf, schema.get("$defs", {}))
            found = found or bool(leaves)
        if not found:
            subscribed = ", ".join(self.types)
            return f"no subscribed event type ({subscribed}) has {'.'.join(segments)}"
        return kind


@functools.cache
def _data_schema(event_type: str) -> dict[str, Any]:
    return BY_TYPE[event_type].data_schema()  # read, never changed


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def _alternatives(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _deref(schema, defs)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return [alt for option in options for alt in _alternatives(option, defs)]
    return [schema]


def _lookup(schema: dict[str, Any], defs: dict[str, Any], segments: tuple[str, ...]) -> list[dict[str, Any]]:
    """The schemas at ``segments`` below ``schema`` (a list's elements stand for the list)."""
    leaves = []
    for alt in _alternatives(schema, defs):
        if alt.get("type") == "array":
            leaves += _lookup(alt.get("items", {}), defs, segments)
        elif not segments:
            leaves.append(alt)
        elif alt.get("type") == "object" or "properties" in alt:
            properties = alt.get("properties", {})
            if segments[0] in properties:
                leaves += _lookup(properties[segments[0]], defs, segments[1:])
            elif not properties and alt.get("additionalProperties", True) is not False:
                leaves.append({})  # a free-form object: below it, anything
        elif "type" not in alt and "enum" not in alt and "const" not in alt:
            leaves.append({})  # Any
    return leaves


def _add_kind(kind: PathKind, leaf: dict[str, Any], defs: dict[str, Any]) -> None:
    for alt in _alternatives(leaf, defs):
        values = alt.get("enum", [alt["const"]] if "const" in alt else None)
        if values is not None:
            strings = [v for v in values if isinstance(v, str)]
            if set(strings) == set(SEVERITY_RANK):
                kind.severity = True
            elif strings:
                kind.strings = True
            kind.add_enum(strings)
            continue
        match alt.get("type"):
            case "string":
                kind.strings = True
                kind.add_free_strings()
            case "number" | "integer":
                kind.number = True
            case "boolean":
                kind.boolean = True
            case "null":
                kind.null = True
            case "object":
                kind.object = True
            case None:
                kind.any = True
                kind.add_free_strings()
