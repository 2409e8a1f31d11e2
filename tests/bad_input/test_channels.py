"""Queue URLs, bus names and options the AWS channels refuse when built, naming the value.

Refusals at publish time live with the channels: an oversized message without offload
(tests/channels/test_s3_offload.py), a missing queue or bus, a message that cannot be
serialised (test_sqs.py, test_eventbridge.py); through the operators, see
test_connections.py.
"""

from __future__ import annotations

import pytest

from airflow_provider_castore_dam.channels.eventbridge import EventBridgeMessageChannel
from airflow_provider_castore_dam.channels.s3_offload import S3Offload
from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.errors import InvalidPourInputError
from tests.channels.aws import create_bus_to_queue, create_queue, receive_all

SQS_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012"
BUS_NAME_RULE = "is not an EventBridge bus name (1 to 256 letters, digits, and . - _ /)"


@pytest.mark.parametrize(
    ("queue_url", "fragment"),
    [
        ("", "queue_url must be a non-empty string, not ''"),
        (None, "queue_url must be a non-empty string, not None"),
        ("replays", "queue_url 'replays' is not an SQS queue URL: it is not an http(s) URL"),
        ("ftp://sqs.eu-west-1.amazonaws.com/1/q", "it is not an http(s) URL"),
        (f"{SQS_URL}/replays ", "it contains white space"),
        (f"{SQS_URL}/replays?Action=DeleteQueue", "it has a query string or a fragment"),
        (f"{SQS_URL}/replays#x", "it has a query string or a fragment"),
        (f"{SQS_URL}/replays/", "its path is not /<account id>/<queue name>"),
        (f"{SQS_URL}/../replays", "its path is not /<account id>/<queue name>"),
        ("https://sqs.eu-west-1.amazonaws.com/replays", "its path is not"),
        (f"{SQS_URL}/{'q' * 81}", f"its queue name {'q' * 81!r} is not 1 to 80 letters"),
        (f"{SQS_URL}/{'q' * 76}.fifo", "is not 1 to 80 letters, digits, hyphens or underscores"),
        (f"{SQS_URL}/re;plays", "its queue name 're;plays' is not 1 to 80 letters"),
    ],
)
def test_bad_queue_urls(queue_url, fragment):
    with pytest.raises(InvalidPourInputError) as raised:
        SQSMessageChannel(queue_url, client=object())

    assert fragment in str(raised.value)
    if queue_url:
        assert repr(queue_url) in str(raised.value)


@pytest.mark.parametrize(
    "queue_url",
    [
        f"{SQS_URL}/replays",
        f"{SQS_URL}/{'q' * 75}.fifo",
        "http://127.0.0.1:4566/000000000000/local_queue-1",
        "http://localhost:9324/queue/elasticmq",
    ],
)
def test_good_queue_urls_pass(queue_url):
    assert SQSMessageChannel(queue_url, client=object()).queue_url == queue_url


@pytest.mark.parametrize(
    ("bus", "fragment"),
    [
        ("", "event_bus_name must be a non-empty string, not ''"),
        (42, "event_bus_name must be a non-empty string, not 42"),
        ("castore bus", f"event_bus_name 'castore bus' {BUS_NAME_RULE}"),
        ('castore","Source":"evil', BUS_NAME_RULE),
        ("castore-bus\n", BUS_NAME_RULE),
        ("b" * 257, BUS_NAME_RULE),
        ("arn:aws:events:eu-west-1:123:event-bus/castore", BUS_NAME_RULE),
    ],
)
def test_bad_event_bus_names(bus, fragment):
    with pytest.raises(InvalidPourInputError) as raised:
        EventBridgeMessageChannel(bus, client=object())

    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    "bus",
    [
        "castore-bus",
        "aws.partner/acme.com/123/bus",
        "arn:aws:events:eu-west-1:123456789012:event-bus/castore",
    ],
)
def test_good_event_bus_names_pass(bus):
    assert EventBridgeMessageChannel(bus, client=object()).event_bus_name == bus


def test_injection_in_a_queue_url_touches_nothing(moto_reset, pokemons):
    """``?Action=PurgeQueue`` is refused before any request: the message already in the queue
    stays, and nothing is added."""
    sqs = moto_reset.client("sqs")
    queue_url = create_queue(sqs, "replays")
    sqs.send_message(QueueUrl=queue_url, MessageBody="already there")

    with pytest.raises(InvalidPourInputError, match="it has a query string"):
        pour_event_store_events(
            pokemons, SQSMessageChannel(f"{queue_url}?Action=PurgeQueue", client=sqs)
        )

    assert [message["Body"] for message in receive_all(sqs, queue_url)] == ["already there"]


def test_injection_in_a_bus_name_publishes_nothing(moto_reset, pokemons):
    sqs, events = moto_reset.client("sqs"), moto_reset.client("events")
    target = create_bus_to_queue(events, sqs, "castore", "projection", ["POKEMONS", "evil"])

    with pytest.raises(InvalidPourInputError) as raised:
        pour_event_store_events(
            pokemons, EventBridgeMessageChannel('castore","Source":"evil', client=events)
        )

    assert 'event_bus_name \'castore","Source":"evil\'' in str(raised.value)
    assert receive_all(sqs, target) == []


# Moved here from tests/channels/test_sqs.py and test_s3_offload.py, now with the messages.


@pytest.mark.parametrize(
    ("url", "options", "fragment"),
    [
        (
            "http://x/1/q",
            {"fifo_deduplication": "run"},
            "fifo_deduplication='run' needs a FIFO queue (URL ending in .fifo); http://x/1/q",
        ),
        (
            "http://x/1/q.fifo",
            {"fifo_deduplication": "weekly"},
            "fifo_deduplication must be 'castore' or 'run', not 'weekly'",
        ),
        (
            "http://x/1/q.fifo",
            {"run_id": "r1"},
            "run_id is only used with fifo_deduplication='run'",
        ),
        (
            "http://x/1/q.fifo",
            {"fifo_deduplication": "run", "run_id": "has space"},
            "run_id must be 1 to 64 printable ASCII characters without spaces, not 'has space'",
        ),
        (
            "http://x/1/q.fifo",
            {"fifo_deduplication": "run", "run_id": "x" * 65},
            f"not {'x' * 65!r}",
        ),
        (
            "http://x/1/q",
            {"region_name": "eu-west-1"},
            "pass either client, or session / region_name / endpoint_url, not both",
        ),
        ("http://x/1/q", {"s3_offload": "bucket"}, "s3_offload must be an S3Offload, not 'bucket'"),
    ],
)
def test_bad_sqs_options(url, options, fragment):
    with pytest.raises(InvalidPourInputError) as raised:
        SQSMessageChannel(url, client=object(), **options)

    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"bucket": ""}, "bucket must be a non-empty string, not ''"),
        ({"bucket": "b", "prefix": 7}, "prefix must be a string, not 7"),
        (
            {"bucket": "b", "url_expiry_seconds": 0},
            "url_expiry_seconds must be an integer from 1 to 604800, not 0",
        ),
        ({"bucket": "b", "url_expiry_seconds": 8 * 24 * 3600}, "not 691200"),
        ({"bucket": "b", "url_expiry_seconds": "900"}, "not '900'"),
    ],
)
def test_bad_offload_options(options, fragment):
    with pytest.raises(InvalidPourInputError) as raised:
        S3Offload(client=object(), **options)

    assert fragment in str(raised.value)


def test_offload_repr_shows_no_client():
    assert repr(S3Offload("b", client=object())) == (
        "S3Offload(bucket='b', prefix='', url_expiry_seconds=900)"
    )
