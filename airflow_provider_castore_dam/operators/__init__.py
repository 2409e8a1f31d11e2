"""Airflow operators: one per pour utility, and the checks that follow pours."""

from airflow_provider_castore_dam.operators.integrity import CheckEventStoreIntegrityOperator
from airflow_provider_castore_dam.operators.migrate import MigrateEventStoreOperator
from airflow_provider_castore_dam.operators.pour import (
    PourAggregateEventsOperator,
    PourEventStoreAggregateIdsOperator,
    PourEventStoreCollectionEventsOperator,
    PourEventStoreEventsOperator,
)
from airflow_provider_castore_dam.operators.reconcile import ReconcilePourOperator

__all__ = [
    "CheckEventStoreIntegrityOperator",
    "MigrateEventStoreOperator",
    "PourAggregateEventsOperator",
    "PourEventStoreAggregateIdsOperator",
    "PourEventStoreCollectionEventsOperator",
    "PourEventStoreEventsOperator",
    "ReconcilePourOperator",
]
