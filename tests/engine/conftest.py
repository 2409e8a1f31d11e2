from __future__ import annotations

import pytest

from airflow_provider_castore_dam.channels import InMemoryMessageChannel
from airflow_provider_castore_dam.stores import InMemoryEventStore
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS


@pytest.fixture
def channel() -> InMemoryMessageChannel:
    return InMemoryMessageChannel()


@pytest.fixture
def pokemons() -> InMemoryEventStore:
    return InMemoryEventStore("POKEMONS", DEMO_EVENTS["POKEMONS"])


@pytest.fixture
def trainers() -> InMemoryEventStore:
    return InMemoryEventStore("TRAINERS", DEMO_EVENTS["TRAINERS"])
