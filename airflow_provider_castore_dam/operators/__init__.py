"""Airflow operators, one per pour utility."""

from airflow_provider_castore_dam.operators.pour import (
    PourAggregateEventsOperator,
    PourEventStoreAggregateIdsOperator,
    PourEventStoreCollectionEventsOperator,
    PourEventStoreEventsOperator,
)

__all__ = [
    "PourAggregateEventsOperator",
    "PourEventStoreAggregateIdsOperator",
    "PourEventStoreCollectionEventsOperator",
    "PourEventStoreEventsOperator",
]
