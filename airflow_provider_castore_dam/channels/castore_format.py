"""What Castore's message adapters put on the wire, computed the way Castore computes it.

Shared by the SQS and EventBridge channels and the S3 offload:

- :func:`to_json` serialises like JavaScript's ``JSON.stringify`` (compact, non-ASCII kept,
  lone surrogates escaped, integer-like keys first, numbers formatted as JavaScript does), so
  bodies and details are the bytes Castore would send for the same message;
- :func:`castore_message_id`, :func:`message_group_id`, :func:`detail_type` and
  :func:`s3_object_path` reproduce Castore 2.4.2's rules, including which message kind they test
  first (the SQS adapter checks ``aggregateId`` first, the EventBridge adapter and the S3 key
  ``event`` first);
- :func:`utf8_size` counts bytes as Node's ``Buffer.byteLength`` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from airflow_provider_castore_dam.errors import MessageChannelError
from airflow_provider_castore_dam.protocols import Message

REPLAYED_DETAIL_TYPE = "__REPLAYED__"
AGGREGATE_EXISTS_DETAIL_TYPE = "__AGGREGATE_EXISTS__"

_ARRAY_INDEX = re.compile(r"(?:0|[1-9][0-9]{0,9})\Z")
_MAX_ARRAY_INDEX = 2**32 - 2
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidMessageError(MessageChannelError):
    """A message is not a Castore message the channel can format (nothing of the call was sent)."""


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8, a lone surrogate counting 3 (as Node's ``Buffer.byteLength``)."""
    return len(text.encode("utf-8", "surrogatepass"))


def js_number(value: float) -> str:
    """A finite float as JavaScript's ``Number.prototype.toString`` writes it; NaN and
    infinities as ``null`` (what ``JSON.stringify`` writes for them)."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 2**53:  # exact: every digit is significant
        return str(int(value))
    text = repr(value)  # shortest digits that round-trip, as in JavaScript
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    integer, _, fraction = mantissa.partition(".")
    digits = integer + fraction
    point = len(integer) + int(exponent or "0")  # value = 0.<digits> * 10**point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exp = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + (digits if k == 1 else digits[0] + "." + digits[1:]) + exp


def _js_string(value: str) -> str:
    encoded: str = encode_basestring(value)
    if _SURROGATE.search(encoded):
        encoded = _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", encoded)
    return encoded


def _is_array_index(key: str) -> bool:
    return bool(_ARRAY_INDEX.match(key)) and int(key) <= _MAX_ARRAY_INDEX


def _ordered_keys(mapping: Mapping[Any, Any]) -> list[str]:
    keys: list[str] = []
    for key in mapping:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be strings, not {type(key).__name__}: {key!r}")
        keys.append(key)
    indices = [key for key in keys if _is_array_index(key)]
    if not indices:
        return keys
    # JavaScript objects list integer-like keys first, ascending, then the others in order.
    return sorted(indices, key=int) + [key for key in keys if not _is_array_index(key)]


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_js_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(js_number(value))
    elif isinstance(value, Decimal):
        out.append(js_number(float(value)))
    elif isinstance(value, Mapping):
        out.append("{")
        for position, key in enumerate(_ordered_keys(value)):
            if position:
                out.append(",")
            out.append(_js_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def to_json(value: Any) -> str:
    """``JSON.stringify(value)`` for JSON-like Python values.

    Differences that cannot be helped: integers beyond 2**53 keep every digit (JavaScript would
    already have rounded them), ``Decimal`` is written as the nearest double.
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def _js_text(value: Any) -> str:
    """``String(value)`` for the parts of Castore's ids."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        number = js_number(float(value)) if not isinstance(value, int) else str(value)
        return "NaN" if number == "null" else number
    return to_json(value)


def _js_truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value is not None and value is not False and value != 0 and value != ""


def _event(message: Message) -> Mapping[str, Any]:
    event = message["event"]
    if not isinstance(event, Mapping):
        raise InvalidMessageError(f"the 'event' of a message must be an object, not {event!r}")
    return event


def _check(message: Any) -> Message:
    if not isinstance(message, Mapping):
        raise InvalidMessageError(f"a message must be an object, not {type(message).__name__}")
    if "aggregateId" not in message and "event" not in message:
        raise InvalidMessageError(
            "cannot parse message: it has neither 'aggregateId' (aggregate-exists message) "
            f"nor 'event' (event-carrying message); keys: {sorted(map(str, message))}"
        )
    return dict(message)


def is_aggregate_exists(message: Message) -> bool:
    """Castore's ``isAggregateExistsMessage``: the message has an ``aggregateId`` key."""
    return "aggregateId" in message


def is_event_carrying(message: Message) -> bool:
    """Castore's ``isEventCarryingMessage``: the message has an ``event`` key."""
    return "event" in message


def aggregate_and_version(message: Message) -> tuple[Any, Any]:
    """The SQS adapter's ``parseMessage``: aggregate-exists checked first."""
    message = _check(message)
    if is_aggregate_exists(message):
        return message["aggregateId"], None
    event = _event(message)
    return event.get("aggregateId"), event.get("version")


def castore_message_id(message: Message) -> str:
    """``[eventStoreId, aggregateId, version].filter(Boolean).join('#')``."""
    aggregate_id, version = aggregate_and_version(message)
    parts = [message.get("eventStoreId"), aggregate_id, version]
    return "#".join(_js_text(part) for part in parts if _js_truthy(part))


def message_group_id(message: Message) -> str:
    """``[eventStoreId, aggregateId].join('#')`` (``join`` writes null and undefined as '')."""
    aggregate_id, _ = aggregate_and_version(message)
    parts = [message.get("eventStoreId"), aggregate_id]
    return "#".join("" if part is None else _js_text(part) for part in parts)


def detail_type(message: Message, *, replay: bool) -> str:
    """The EventBridge adapter's ``getDetailType``: event-carrying checked first."""
    message = _check(message)
    if is_event_carrying(message):
        if replay:
            return REPLAYED_DETAIL_TYPE
        event_type = _event(message).get("type")
        if not isinstance(event_type, str) or not event_type:
            raise InvalidMessageError(f"the event of the message has no type: {event_type!r}")
        return event_type
    return AGGREGATE_EXISTS_DETAIL_TYPE


def s3_object_path(message: Message, iso_time: str) -> str:
    """The ``-s3`` adapters' object path, before the prefix: event-carrying checked first.

    ``<eventStoreId>/<aggregateId>/<iso_time>#<version>``, or
    ``<eventStoreId>/<aggregateId>/<iso_time>`` for aggregate-exists messages.
    """
    message = _check(message)
    if is_event_carrying(message):
        event = _event(message)
        last = f"{iso_time}#{_js_path_part(event.get('version'))}"
        parts = [message.get("eventStoreId"), event.get("aggregateId"), last]
    else:
        parts = [message.get("eventStoreId"), message.get("aggregateId"), iso_time]
    return "/".join("" if part is None else _js_text(part) for part in parts)


def _js_path_part(value: Any) -> str:
    return "undefined" if value is None else _js_text(value)


def describe_message(message: Message) -> str:
    """A short, human description for errors: store, aggregate and version (or kind)."""
    try:
        aggregate_id, version = aggregate_and_version(message)
    except (InvalidMessageError, KeyError):
        return "an unparseable message"
    store = message.get("eventStoreId")
    if version is None and is_aggregate_exists(message):
        return f"aggregate-exists message of event store {store!r}, aggregate {aggregate_id!r}"
    return f"event of event store {store!r}, aggregate {aggregate_id!r}, version {version!r}"
