"""Operator arguments that render to garbage: each operator's templated fields are rendered by
Jinja (as Airflow does before ``execute``), then the task fails naming the argument and the
rendered value, and the SQS queue behind the channel connection receives nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.sdk import DAG

from airflow_provider_castore_dam.errors import ConnectionConfigError, InvalidPourInputError
from airflow_provider_castore_dam.operators import (
    MigrateEventStoreOperator,
    PourAggregateEventsOperator,
    PourEventStoreAggregateIdsOperator,
    PourEventStoreCollectionEventsOperator,
    PourEventStoreEventsOperator,
)
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.engine import oracle

EVENTS = PourEventStoreEventsOperator
IDS = PourEventStoreAggregateIdsOperator
AGGREGATE = PourAggregateEventsOperator
COLLECTION = PourEventStoreCollectionEventsOperator
MIGRATE = MigrateEventStoreOperator
DEFAULTS: dict[type, dict[str, Any]] = {
    EVENTS: {"event_store_id": "POKEMONS"},
    IDS: {"event_store_id": "POKEMONS"},
    AGGREGATE: {"event_store_id": "POKEMONS", "aggregate_id": "pikachu1"},
    COLLECTION: {"event_store_ids": ["POKEMONS", "TRAINERS"]},
    MIGRATE: {
        "event_store_ids": ["POKEMONS"],
        "destination_conn_id": "castore_event_store_default",
    },
}


def rendered(operator_class: type, arguments: dict[str, Any], params: dict, native: bool = False):
    """The operator, in a DAG, with its template fields rendered against ``params``."""
    with DAG("bad_input", schedule=None, render_template_as_native_obj=native):
        operator = operator_class(task_id="pour", **{**DEFAULTS[operator_class], **arguments})
    operator.render_template_fields({"params": params})
    return operator


def case(operator_class, arguments, params, fragment, *, error=InvalidPourInputError, native=False):
    return pytest.param(operator_class, arguments, params, native, error, fragment, id=fragment)


CASES = [
    case(
        EVENTS,
        {"rate_limit": "{{ params.rate }}"},
        {"rate": "fast"},
        "rate_limit must be a number of messages per second, not 'fast'",
    ),
    case(
        EVENTS,
        {"rate_limit": "{{ params.rate }}"},
        {"rate": 0},
        "rate_limit must be positive and finite, not 0.0",
    ),
    case(
        EVENTS,
        {"rate_limit": "{{ params.rate }}"},
        {"rate": -5},
        "rate_limit must be positive and finite, not -5.0",
    ),
    case(
        EVENTS,
        {"rate_limit": "{{ params.rate }}"},
        {"rate": "NaN"},
        "rate_limit must be positive and finite, not nan",
    ),
    case(
        EVENTS,
        {"rate_limit": "{{ params.rate }}"},
        {"rate": 0.00001},
        "rate_limit 1e-05 is below 0.001 messages per second",
    ),
    case(
        EVENTS,
        {"rate_limit": "{{ params.rate }}"},
        {"rate": [10]},
        "rate_limit must be a number of messages per second, not [10]",
        native=True,
    ),
    case(
        EVENTS,
        {"dry_run": "{{ params.dry_run }}"},
        {"dry_run": "maybe"},
        "dry_run must be true or false, not 'maybe'",
    ),
    case(  # an unset param renders as "None" without native rendering
        EVENTS,
        {"filters": {"from": "{{ params.start }}"}},
        {"start": None},
        "filters.from 'None' is not an ISO 8601 timestamp",
    ),
    case(
        EVENTS,
        {"filters": {"to": "{{ params.end }}"}},
        {"end": "2024-01-01"},
        "filters.to '2024-01-01' is a date, not a timestamp",
    ),
    case(
        AGGREGATE,
        {"filters": {"from": "{{ params.start }}"}},
        {"start": "2024-01-01T00:00:00"},
        "filters.from '2024-01-01T00:00:00' has no time zone",
    ),
    case(
        COLLECTION,
        {"filters": {"from": "{{ params.start }}", "to": "{{ params.end }}"}},
        {"start": "2024-06-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
        "filters.from 2024-06-01T00:00:00.000Z is after filters.to 2024-01-01T00:00:00.000Z",
    ),
    case(
        EVENTS,
        {"filters": "{{ params.filters }}"},
        {"filters": {"from": "2024-01-01T00:00:00Z"}},
        "filters must be a mapping, not str \"{'from': '2024-01-01T00:00:00Z'}\"",
    ),
    case(
        EVENTS,
        {"event_store_id": "{{ params.store }}"},
        {"store": ""},
        "event_store_id must be a non-empty string, not ''",
    ),
    case(
        EVENTS,
        {"event_store_id": "{{ params.store }}"},
        {"store": "POKEMON"},
        "event store id 'POKEMON' is not a store of the in-memory-demo connection",
    ),
    case(
        COLLECTION,
        {"event_store_ids": "{{ params.ids }}"},
        {"ids": " , "},
        "event_store_ids ' , ' names no event store; give at least one id",
    ),
    case(
        COLLECTION,
        {"event_store_ids": "{{ params.ids }}"},
        {"ids": []},
        "event_store_ids [] names no event store; give at least one id",
        native=True,
    ),
    case(
        COLLECTION,
        {"event_store_ids": "{{ params.ids }}"},
        {"ids": "POKEMONS, TRAINERS, POKEMONS"},
        "event_store_ids 'POKEMONS, TRAINERS, POKEMONS' names 'POKEMONS' more than once",
    ),
    case(
        COLLECTION,
        {"event_store_ids": "{{ params.ids }}"},
        {"ids": "[POKEMONS, TRAINERS]"},
        "event_store_ids '[POKEMONS, TRAINERS]' is not a list of ids nor comma-separated ids",
    ),
    case(
        AGGREGATE,
        {"aggregate_id": "{{ params.aggregate }}"},
        {"aggregate": ""},
        "aggregate_id must be a non-empty string, not ''",
    ),
    case(
        IDS,
        {"options": {"limit": "{{ params.limit }}"}},
        {"limit": 0},
        "options.limit must be a positive integer, not 0",
    ),
    case(
        IDS,
        {"options": {"limit": "{{ params.limit }}"}},
        {"limit": "ten"},
        "options.limit must be a positive integer, not 'ten'",
    ),
    case(
        IDS,
        {"options": {"reverse": "{{ params.reverse }}"}},
        {"reverse": "sometimes"},
        "options.reverse must be true or false, not 'sometimes'",
    ),
    case(
        AGGREGATE,
        {"options": {"min_version": "{{ params.min }}", "max_version": "{{ params.max }}"}},
        {"min": 3, "max": 2},
        "options.min_version 3 is above options.max_version 2",
    ),
    case(
        COLLECTION,
        {"filters": {"event_types": "{{ params.types }}"}},
        {"types": ""},
        "filters.event_types must be a non-empty list of non-empty strings",
    ),
    case(
        EVENTS,
        {"filters": {"aggregate_ids": {"file": "{{ params.ids }}"}}},
        {"ids": "/no/such/ids.txt"},
        "cannot read the aggregate ids of filters.aggregate_ids.file '/no/such/ids.txt'",
    ),
    case(
        EVENTS,
        {"filters": {"types": "{{ params.types }}"}},
        {"types": "A"},
        "unknown filters key(s) ['types']",
    ),
    case(
        IDS,
        {"filters": {"event_types": "{{ params.types }}"}},
        {"types": "A"},
        "unknown filters key(s) ['event_types']; allowed here: aggregate_ids",
    ),
    case(
        EVENTS,
        {"transform": "{{ params.transform }}"},
        {"transform": "my_upcasters:upcast"},
        "cannot import transform 'my_upcasters:upcast'",
    ),
    case(
        AGGREGATE,
        {"rename_event_stores": "{{ params.renames }}"},
        {"renames": "POKEMONS_V2"},
        "rename_event_stores must be a dict of event store ids",
    ),
    case(
        MIGRATE,
        {"conflict": "{{ params.conflict }}"},
        {"conflict": "replace"},
        "conflict must be one of fail, skip_identical, overwrite, not 'replace'",
    ),
    case(
        MIGRATE,
        {"destination_conn_id": "{{ params.conn }}"},
        {"conn": "castore_event_store_default"},
        "connection 'castore_event_store_default' of kind in-memory-demo cannot be written to",
    ),
    case(
        EVENTS,
        {"event_store_conn_id": "{{ params.conn }}"},
        {"conn": "castore_event_store_prod"},
        "castore_event_store_prod",
        error=AirflowNotFoundException,
    ),
    case(
        EVENTS,
        {"message_channel_conn_id": "{{ params.conn }}"},
        {"conn": "aws_default"},
        "connection 'aws_default' has type 'aws'; expected 'castore_message_channel'",
        error=ConnectionConfigError,
    ),
    case(
        EVENTS,
        {"partition": "{{ params.partition }}"},
        {"partition": "half"},
        "partition must be [index, count] or its JSON, not 'half'",
    ),
    case(
        EVENTS,
        {"partition": "{{ params.partition }}"},
        {"partition": [8, 8]},
        "partition index must be from 0 to 7 (count 8), not 8",
    ),
    case(
        COLLECTION,
        {"partition": "{{ params.partition }}"},
        {"partition": {"index": 0, "count": 0}},
        "partition count must be from 1 to 65536, not 0",
    ),
]


@pytest.mark.parametrize(
    ("operator_class", "arguments", "params", "native", "error", "fragment"), CASES
)
def test_templated_argument_rendered_to_garbage(
    queue, demo_store, operator_class, arguments, params, native, error, fragment
):
    operator = rendered(operator_class, arguments, params, native)

    with pytest.raises(error) as raised:
        operator.execute({"params": params})

    assert fragment in str(raised.value)
    assert queue.received() == []


# What rendered templates are *not* garbage: without native rendering a list param renders as
# a list literal and numbers and booleans as strings; they are understood, not refused.


def test_list_param_rendered_as_a_list_literal(queue, demo_store):
    operator = rendered(
        COLLECTION, {"event_store_ids": "{{ params.ids }}"}, {"ids": ["POKEMONS", "TRAINERS"]}
    )
    assert operator.event_store_ids == "['POKEMONS', 'TRAINERS']"

    result = operator.execute({})

    assert result["poured_event_count"] == 10
    bodies = [json.loads(message["Body"]) for message in queue.received()]
    assert sorted(
        (b["eventStoreId"], b["event"]["aggregateId"], b["event"]["version"]) for b in bodies
    ) == sorted(
        (store_id, event["aggregateId"], event["version"])
        for store_id, event in oracle.pour_order(DEMO_EVENTS)
    )


def test_numbers_and_booleans_rendered_as_strings_in_options(queue, demo_store):
    operator = rendered(
        IDS,
        {"options": {"limit": "{{ params.limit }}", "reverse": "{{ params.reverse }}"}},
        {"limit": 1, "reverse": True},
    )
    assert operator.options == {"limit": "1", "reverse": "True"}

    result = operator.execute({})

    assert result["poured_aggregate_id_count"] == 3
    bodies = [json.loads(message["Body"]) for message in queue.received()]
    assert sorted(body["aggregateId"] for body in bodies) == [
        "arcanine1",
        "charizard1",
        "pikachu1",
    ]
    assert result["first_scanned_aggregate"]["aggregate_id"] == "arcanine1"  # reversed


def test_more_partitions_than_airflow_maps_fail_when_the_dag_is_parsed():
    with DAG("too_many", schedule=None), pytest.raises(InvalidPourInputError) as raised:
        EVENTS.partitioned(task_id="pour", partitions=1025, event_store_id="POKEMONS")
    assert "partitions=1025 is more than Airflow's [core] max_map_length (1024)" in str(
        raised.value
    )
    with DAG("zero", schedule=None), pytest.raises(InvalidPourInputError, match="positive"):
        EVENTS.partitioned(task_id="pour", partitions=0, event_store_id="POKEMONS")


def test_a_partitioned_pour_is_a_plan_mapped_pours_and_a_combine():
    with DAG("partitioned", schedule=None) as dag:
        group = COLLECTION.partitioned(
            task_id="pour", partitions=4, event_store_ids=["POKEMONS"], retries=3
        )
    assert set(dag.task_dict) == {
        "pour.plan_partitions",
        "pour.pour_partition",
        "pour.combine_partitions",
    }
    mapped = dag.task_dict["pour.pour_partition"]
    assert mapped.partial_kwargs["retries"] == 3
    assert group.output.operator is dag.task_dict["pour.combine_partitions"]
    assert list(dag.task_dict["pour.plan_partitions"].op_args) == [4]
