"""A pour that keeps its checkpoint in a file, for the crash test (run as a subprocess).

    python -m tests.crash.pour_with_checkpoint_file DSN TABLE STORE_ID QUEUE_URL CHECKPOINT_FILE

Resumes from CHECKPOINT_FILE when it exists; after every confirmed batch writes the new
checkpoint to a temporary file and renames it over CHECKPOINT_FILE (atomic), so a kill at any
moment leaves the last complete checkpoint. AWS settings come from the environment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from airflow_provider_castore_dam.channels.sqs import SQSMessageChannel
from airflow_provider_castore_dam.dam import pour_event_store_events
from airflow_provider_castore_dam.dam.checkpoints import Checkpoint
from airflow_provider_castore_dam.stores.postgres import PostgresEventStore


def save(path: Path, checkpoint: Checkpoint) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(checkpoint))
    os.replace(partial, path)


def main(dsn: str, table: str, store_id: str, queue_url: str, checkpoint_file: str) -> None:
    path = Path(checkpoint_file)
    checkpoint = json.loads(path.read_text()) if path.exists() else None
    store = PostgresEventStore(conninfo=dsn, table=table, event_store_id=store_id)
    channel = SQSMessageChannel(queue_url)
    result = pour_event_store_events(
        store, channel, checkpoint=checkpoint, on_checkpoint=lambda c: save(path, c)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
