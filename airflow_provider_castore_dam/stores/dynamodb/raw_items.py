"""DynamoDB items straight from the response JSON, without botocore's parser.

botocore turns every attribute value of a ``Query`` or ``Scan`` response into Python through
its model-driven parser: about a third of a millisecond per event item, more than everything
else the pour does with it. The items are already JSON in the response body, in DynamoDB's
attribute-value form (``{"S": ...}``, ``{"N": "12"}``, ``{"M": {...}}``), which is what the
store decodes; the only difference is that binary values stay base64 strings instead of
bytes.

:func:`raw_items` registers, once per client, a ``before-parse`` handler that takes ``Items``
out of the body with :func:`json.loads` and hands it back as is; the rest of the response
(``LastEvaluatedKey``, counts, errors) still goes through botocore. The handler only acts in
a thread that is inside ``raw_items``, so a client shared with other code is unaffected.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_OPERATIONS = ("Query", "Scan")
_HANDLER_ID = "castore-dam-raw-items"
_active = threading.local()


def _take_items(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    if not getattr(_active, "on", False) or response_dict.get("status_code", 500) >= 300:
        return
    body = json.loads(response_dict["body"])
    customized_response_dict["Items"] = body.pop("Items", [])
    response_dict["body"] = json.dumps(body).encode()


@contextmanager
def raw_items(client: Any) -> Iterator[None]:
    """Within this block, this thread's ``Query`` and ``Scan`` calls on ``client`` return
    ``Items`` as decoded from the response JSON."""
    events = client.meta.events
    for operation in _OPERATIONS:
        # Registering again with the same unique id is a no-op.
        events.register(f"before-parse.dynamodb.{operation}", _take_items, unique_id=_HANDLER_ID)
    previous = getattr(_active, "on", False)
    _active.on = True
    try:
        yield
    finally:
        _active.on = previous
