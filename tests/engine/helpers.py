from __future__ import annotations

from airflow_provider_castore_dam.channels import InMemoryMessageChannel


def published(channel: InMemoryMessageChannel) -> list[dict]:
    assert all(message.replay for message in channel.messages)
    return [message.message for message in channel.messages]


def event(aggregate_id: str, version: int, timestamp: str, **extra: object) -> dict:
    return {
        "aggregateId": aggregate_id,
        "version": version,
        "type": extra.pop("type", "HAPPENED"),
        "timestamp": timestamp,
        **extra,
    }
