"""The wire format, against values printed by Node.js (``JSON.stringify``) and Castore 2.4.2."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_castore_dam.channels.castore_format import (
    InvalidMessageError,
    castore_message_id,
    detail_type,
    js_number,
    message_group_id,
    s3_object_path,
    to_json,
    utf8_size,
)

# node -e 'console.log(JSON.stringify([...]))'
NUMBERS = [
    (0.1, "0.1"),
    (1e21, "1e+21"),
    (1.5e-7, "1.5e-7"),
    (100.0, "100"),
    (123.456, "123.456"),
    (-0.000001, "-0.000001"),
    (1e-7, "1e-7"),
    (123456789012345680000.0, "123456789012345680000"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (5e-324, "5e-324"),
    (-1.5e21, "-1.5e+21"),
    (float(2**53 + 2), "9007199254740994"),
    (12345.678e10, "123456780000000"),
    (-0.0, "0"),
    (float("nan"), "null"),
    (float("inf"), "null"),
]


@pytest.mark.parametrize(("value", "expected"), NUMBERS)
def test_numbers_are_written_as_javascript_writes_them(value, expected):
    assert to_json(value) == expected


def test_integer_like_keys_come_first_as_in_javascript_objects():
    value = {"b": 1, "2": 2, "1": 3, "a": 4, "01": 5, "4294967294": 6, "4294967295": 7}
    assert to_json(value) == '{"1":3,"2":2,"4294967294":6,"b":1,"a":4,"01":5,"4294967295":7}'


def test_strings_escape_like_json_stringify():
    text = 'a\u0001\b\f\n\r\t"\\\u007f\u2028\ud800x\udc00😀'
    assert to_json(text) == '"a\\u0001\\b\\f\\n\\r\\t\\"\\\\\u007f\u2028\\ud800x\\udc00😀"'


def test_other_values():
    value = {"t": True, "f": False, "n": None, "l": [1, [2.5, "é"]], "d": Decimal("1.50")}
    assert to_json(value) == '{"t":true,"f":false,"n":null,"l":[1,[2.5,"é"]],"d":1.5}'
    with pytest.raises(TypeError):
        to_json({"when": object()})
    with pytest.raises(TypeError):
        to_json({1: "non-string key"})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def as_javascript(value):
    """``value`` with every number a double, as JavaScript holds it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [as_javascript(item) for item in value]
    return {key: as_javascript(item) for key, item in value.items()}


@given(json_values)
def test_output_parses_back_to_the_same_value(value):
    assert as_javascript(json.loads(to_json(value))) == as_javascript(value)


def test_js_number_is_shortest_round_trip():
    for value in (0.3, 2 / 3, 1e-6, 1e-5, 123e18, 1e20 + 1):
        assert float(js_number(value)) == value


EVENT = {"eventStoreId": "S", "event": {"aggregateId": "a", "version": 3, "type": "T"}}
EXISTS = {"eventStoreId": "S", "aggregateId": "a", "initialEventTimestamp": "t"}


def test_message_ids_follow_castore():
    assert castore_message_id(EVENT) == "S#a#3"
    assert castore_message_id(EXISTS) == "S#a"
    # [eventStoreId, aggregateId, version].filter(Boolean): falsy parts are dropped
    assert castore_message_id({"eventStoreId": "S", "event": {"aggregateId": "a", "version": 0}})
    assert (
        castore_message_id({"eventStoreId": "S", "event": {"aggregateId": "a", "version": 0}})
        == "S#a"
    )
    assert castore_message_id({"eventStoreId": "S", "event": {"aggregateId": "", "version": 2}})
    assert message_group_id(EVENT) == message_group_id(EXISTS) == "S#a"
    # an aggregate-exists check comes first in the SQS adapter
    both = {**EVENT, "aggregateId": "b"}
    assert castore_message_id(both) == "S#b"


def test_detail_types_follow_castore():
    assert detail_type(EVENT, replay=True) == "__REPLAYED__"
    assert detail_type(EVENT, replay=False) == "T"
    assert detail_type(EXISTS, replay=True) == detail_type(EXISTS, replay=False)
    assert detail_type(EXISTS, replay=True) == "__AGGREGATE_EXISTS__"
    # the EventBridge adapter checks for an event first
    assert detail_type({**EVENT, "aggregateId": "b"}, replay=True) == "__REPLAYED__"


def test_s3_object_paths_follow_castore():
    iso = "2024-01-01T00:00:00.000Z"
    assert s3_object_path(EVENT, iso) == f"S/a/{iso}#3"
    assert s3_object_path(EXISTS, iso) == f"S/a/{iso}"


def test_unparseable_messages_are_refused():
    for message in ({"eventStoreId": "S"}, {"eventStoreId": "S", "event": "x"}, ["S"]):
        with pytest.raises(InvalidMessageError):
            castore_message_id(message)
    with pytest.raises(InvalidMessageError):
        detail_type({"eventStoreId": "S", "event": {"aggregateId": "a"}}, replay=False)


def test_utf8_size_counts_like_buffer_byte_length():
    assert utf8_size("aé😀") == 1 + 2 + 4
    assert utf8_size("\ud800") == 3
