"""Write side: Castore message channels."""

from airflow_provider_castore_dam.channels.aws_clients import DEFAULT_MAX_IN_FLIGHT
from airflow_provider_castore_dam.channels.in_memory import InMemoryMessageChannel, PublishedMessage

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "InMemoryMessageChannel", "PublishedMessage"]
