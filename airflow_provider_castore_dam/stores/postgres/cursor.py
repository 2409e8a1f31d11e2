"""Reading one query's rows in batches, with bounded memory."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from itertools import islice
from typing import Any

import psycopg
from psycopg import sql

CHUNKED_ROWS = psycopg.pq.version() >= 170000
"""libpq 17 streams a result in chunks (``Cursor.stream(size=...)``)."""
_CURSOR_NAME = "castore_dam_scan"


class CursorReader:
    """Batches of rows of one query, streamed with bounded memory.

    With libpq 17 or later, the query itself is streamed in chunks of ``size`` rows
    (``Cursor.stream(size=...)``): PostgreSQL sends rows as fast as Python takes them, held back
    by the socket, and formats later rows while Python converts earlier ones. (Measured on
    200,000 rows: 35 % faster than FETCHing the same query from a server-side cursor.) With
    older libpq, whose streams go row by row, the rows come through a server-side cursor, one
    ``FETCH`` a batch.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        query: sql.Composed,
        params: Mapping[str, Any],
        size: int,
    ) -> None:
        self._conn = conn
        self._query = query
        self._params = params
        self._size = size
        self._name = sql.Identifier(_CURSOR_NAME)
        self._stream: Iterator[tuple[Any, ...]] | None = None
        self._chunked = CHUNKED_ROWS
        if not self._chunked:
            conn.execute(
                sql.SQL("DECLARE {} NO SCROLL CURSOR FOR {}").format(self._name, query),
                params,
                prepare=False,
            )

    def batches(self) -> Generator[list[tuple[Any, ...]], None, None]:
        cursor = self._conn.cursor()
        if not self._chunked:
            fetch = sql.SQL("FETCH FORWARD {} FROM {}").format(sql.Literal(self._size), self._name)
            while rows := cursor.execute(fetch).fetchall():
                yield rows
            return
        self._stream = stream = cursor.stream(self._query, self._params, size=self._size)
        try:
            while rows := list(islice(stream, self._size)):
                yield rows
        finally:
            # Abandoned mid-stream (the scan was closed): psycopg cancels the query and frees
            # the connection, whose transaction is then rolled back.
            if isinstance(stream, Generator):
                stream.close()

    def close(self) -> None:
        """Read what the query still sends (so that the transaction stays usable for the
        skewed tail), then close the server-side cursor, if any."""
        if self._stream is not None:
            for _ in self._stream:
                pass
        if not self._chunked:
            self._conn.execute(sql.SQL("CLOSE {}").format(self._name))
