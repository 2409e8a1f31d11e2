"""Castore's timestamp form: ISO 8601, UTC, milliseconds, ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

Castore compares timestamps as strings, which is only sound because every timestamp has this
fixed-width form; everything the engine compares is normalised to it first.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import lru_cache

import pendulum

from airflow_provider_castore_dam.errors import InvalidPourInputError

_CASTORE_FORM = re.compile(r"\d{4}-\d\d-\d\dT([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z")


def in_castore_form(text: str) -> bool:
    """Whether ``text`` is already a valid timestamp in Castore's form (the common case,
    checked without parsing)."""
    return _CASTORE_FORM.fullmatch(text) is not None and _is_date(text[:10])


@lru_cache(maxsize=4096)
def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def format_timestamp(moment: dt.datetime) -> str:
    """Castore form of an aware datetime, truncated to the millisecond."""
    utc = moment.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: object, name: str) -> dt.datetime:
    """An aware datetime from a datetime or an ISO 8601 string that names its time zone."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            parsed = pendulum.parse(value, exact=True, tz=None)
        except (ValueError, pendulum.parsing.exceptions.ParserError) as error:
            raise InvalidPourInputError(f"{name} {value!r} is not an ISO 8601 timestamp") from error
        if not isinstance(parsed, dt.datetime):
            raise InvalidPourInputError(
                f"{name} {value!r} is a date, not a timestamp; write e.g. '{value}T00:00:00Z'"
            )
        moment = parsed
    else:
        raise InvalidPourInputError(
            f"{name} must be an ISO 8601 string or a datetime, not {type(value).__name__} {value!r}"
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidPourInputError(f"{name} {value!r} has no time zone; add one, e.g. 'Z' for UTC")
    return moment


def normalize_timestamp(value: object, name: str, *, round_up: bool = False) -> str:
    """Castore form of ``value``; sub-millisecond parts are cut, or rounded up with ``round_up``
    (a lower bound of 12:00:00.0005 admits 12:00:00.001 but not 12:00:00.000)."""
    if isinstance(value, str) and in_castore_form(value):
        return value
    moment = parse_timestamp(value, name)
    if round_up and moment.microsecond % 1000:
        millis = math.ceil(moment.microsecond / 1000)
        moment = moment.replace(microsecond=0) + dt.timedelta(milliseconds=millis)
    return format_timestamp(moment)
