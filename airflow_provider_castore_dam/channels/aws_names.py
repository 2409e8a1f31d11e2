"""Checks of the queue URL and bus name a channel is given, made before anything is sent.

A value that cannot name an SQS queue or an EventBridge bus (a typo, a template that rendered
to garbage, an attempt to smuggle request parameters into the URL) raises
:class:`~airflow_provider_castore_dam.errors.InvalidPourInputError` naming it, instead of
failing on the first publish call.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from airflow_provider_castore_dam.errors import InvalidPourInputError

_ACCOUNT = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
"""The path segment before the queue name: the 12-digit account id on AWS; emulators use
other ids (e.g. ElasticMQ's ``queue``)."""
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}\Z")
_QUEUE_NAME_MAX = 80  # ".fifo" included
_BUS = re.compile(r"(?:arn:aws[\w-]*:events:[a-z0-9-]+:\d{12}:event-bus/)?[A-Za-z0-9/._-]{1,256}\Z")


def _queue_url_problem(queue_url: str) -> str | None:
    """Why ``queue_url`` is not ``http(s)://<host>/<account>/<queue name>``, or None."""
    if any(character.isspace() for character in queue_url):
        return "it contains white space"
    parts = urlsplit(queue_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an http(s) URL"
    if "@" in parts.netloc:
        return "it carries credentials"
    if parts.query or parts.fragment or queue_url.endswith(("?", "#")):
        return "it has a query string or a fragment"
    segments = parts.path.split("/")[1:]
    if len(segments) != 2 or not _ACCOUNT.match(segments[0]):
        return "its path is not /<account id>/<queue name>"
    name = segments[1]
    base = name.removesuffix(".fifo")
    if not _QUEUE_NAME.match(base) or len(name) > _QUEUE_NAME_MAX:
        return (
            f"its queue name {name!r} is not 1 to 80 letters, digits, hyphens or underscores "
            "(ending in .fifo for a FIFO queue)"
        )
    return None


def check_queue_url(queue_url: object) -> str:
    """``queue_url`` if it is an SQS queue URL, e.g.
    ``https://sqs.eu-west-1.amazonaws.com/123456789012/replays``."""
    if not isinstance(queue_url, str) or not queue_url:
        raise InvalidPourInputError(f"queue_url must be a non-empty string, not {queue_url!r}")
    problem = _queue_url_problem(queue_url)
    if problem == "it carries credentials":
        raise InvalidPourInputError("queue_url must not carry credentials (user:password@)")
    if problem is not None:
        raise InvalidPourInputError(
            f"queue_url {queue_url!r} is not an SQS queue URL: {problem}; expected "
            "https://sqs.<region>.amazonaws.com/<account id>/<queue name>"
        )
    return queue_url


def check_event_bus_name(event_bus_name: object) -> str:
    """``event_bus_name`` if it is an EventBridge bus name or ARN."""
    if not isinstance(event_bus_name, str) or not event_bus_name:
        raise InvalidPourInputError(
            f"event_bus_name must be a non-empty string, not {event_bus_name!r}"
        )
    if not _BUS.match(event_bus_name):
        raise InvalidPourInputError(
            f"event_bus_name {event_bus_name!r} is not an EventBridge bus name (1 to 256 "
            "letters, digits, and . - _ /) nor a bus ARN "
            "(arn:aws:events:<region>:<account id>:event-bus/<name>)"
        )
    return event_bus_name
