"""Operator arguments from rendered templates: a template renders text (unless the DAG sets
``render_template_as_native_obj``), which these turn back into the values the engine takes."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_castore_dam.errors import InvalidPourInputError

INTEGER_OPTIONS = ("limit", "min_version", "max_version")


def rendered_rate_limit(value: Any) -> float | None:
    """A rate limit from a rendered template: numbers pass, numeric strings are converted."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "null"):
            return None
        try:
            return float(text)
        except ValueError as error:
            raise InvalidPourInputError(
                f"rate_limit must be a number of messages per second, not {value!r}"
            ) from error
    return value  # type: ignore[no-any-return]


def rendered_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidPourInputError(f"{name} must be true or false, not {value!r}")


def rendered_options(options: Any) -> Any:
    """Options from rendered templates: whole-number strings (``"500"``) of the integer options
    and ``"true"`` / ``"false"`` of ``reverse`` are converted; the engine checks the rest."""
    if not isinstance(options, Mapping):
        return options
    return {key: _rendered_option(key, value) for key, value in options.items()}


def _rendered_option(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if key in INTEGER_OPTIONS and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if key == "reverse" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def rendered_event_store_ids(value: Any) -> list[str]:
    """A list of ids; or one string (what a template renders): comma-separated ids, or a
    list literal such as ``"['POKEMONS', 'TRAINERS']"`` (a list param rendered without
    ``render_template_as_native_obj``). At least one id, each once."""
    ids = _event_store_ids(value)
    if not ids:
        raise InvalidPourInputError(
            f"event_store_ids {value!r} names no event store; give at least one id"
        )
    twice = sorted({store_id for store_id in ids if ids.count(store_id) > 1})
    if twice:
        raise InvalidPourInputError(
            f"event_store_ids {value!r} names {', '.join(map(repr, twice))} more than once"
        )
    return ids


def _event_store_ids(value: Any) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        if not (text.startswith("[") and text.endswith("]")):
            return [part.strip() for part in text.split(",") if part.strip()]
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
            raise InvalidPourInputError(
                f"event_store_ids {value!r} is not a list of ids nor comma-separated ids"
            ) from error
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(item, str) and item for item in value)
    ):
        return list(value)
    raise InvalidPourInputError(
        f"event_store_ids must be a list of non-empty ids or comma-separated ids, not {value!r}"
    )


def rendered_literal(value: Any, name: str, expected: str) -> Any:
    """``value`` as given, or parsed from rendered text: JSON, or the Python literal of a list
    or dict (what a template renders without ``render_template_as_native_obj``); empty,
    ``none`` and ``null`` are None."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("", "none", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise InvalidPourInputError(f"{name} must be {expected}, not {value[:200]!r}") from error


def rendered_filters(filters: Any) -> Any:
    """Filters from rendered templates: ``event_types`` and ``aggregate_ids`` rendered as text
    (a list param without ``render_template_as_native_obj``) become lists again: JSON, a
    Python literal, or comma-separated names. The engine checks the rest."""
    if not isinstance(filters, Mapping):
        return filters
    return {
        key: _rendered_names(value, key) if key in ("event_types", "aggregate_ids") else value
        for key, value in filters.items()
    }


def _rendered_names(value: Any, key: str) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text[:1] in ("[", "{"):
        return rendered_literal(text, f"filters.{key}", "a list, a dict or comma-separated names")
    return [name.strip() for name in text.split(",") if name.strip()]
