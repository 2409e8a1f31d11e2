"""Write side: Castore message channels."""

from airflow_provider_castore_dam.channels.in_memory import InMemoryMessageChannel, PublishedMessage

__all__ = ["InMemoryMessageChannel", "PublishedMessage"]
