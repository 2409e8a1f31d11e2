"""OpenLineage facets of the pour operators, through the OpenLineage provider's own extraction
path (no backend, no network): the stores read, the queue, bus or event store written, and
the messages poured as the output's row count."""

from __future__ import annotations

from unittest.mock import MagicMock

from airflow.providers.common.compat.openlineage.facet import (
    InputDataset,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
)
from airflow.providers.openlineage.extractors import ExtractorManager, OperatorLineage
from airflow.utils.state import TaskInstanceState

from airflow_provider_castore_dam.operators import (
    MigrateEventStoreOperator,
    PourEventStoreCollectionEventsOperator,
    PourEventStoreEventsOperator,
)
from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.airflow.connections import (
    event_store_connection,
    message_channel_connection,
    set_connection,
)
from tests.airflow.test_example_dags import demo_store  # noqa: F401
from tests.airflow.test_example_migration import tables  # noqa: F401
from tests.stores.dynamodb_tables import create_table, put_events


def extracted(operator) -> OperatorLineage:
    """What the OpenLineage listener gets for the task on success."""
    return ExtractorManager().extract_metadata(
        dagrun=MagicMock(run_id="run"),
        task=operator,
        task_instance_state=TaskInstanceState.SUCCESS,
        task_instance=MagicMock(),
    )


def output(namespace: str, name: str, count: int) -> OutputDataset:
    facet = OutputStatisticsOutputDatasetFacet(rowCount=count)
    return OutputDataset(namespace=namespace, name=name, outputFacets={"outputStatistics": facet})


def test_a_postgres_store_poured_into_an_sqs_queue(airflow_db, monkeypatch, aws, demo_store):  # noqa: F811
    from psycopg.conninfo import conninfo_to_dict

    url = aws.client("sqs").create_queue(QueueName="projection")["QueueUrl"]
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("sqs", queue_url=url),
    )
    operator = PourEventStoreCollectionEventsOperator(
        task_id="pour", event_store_ids=["POKEMONS", "TRAINERS"]
    )
    operator.execute({})

    params = conninfo_to_dict(demo_store)
    namespace = f"postgres://{params['host']}:{params.get('port', 5432)}"
    expected = OperatorLineage(
        inputs=[InputDataset(namespace=namespace, name=f"{params['dbname']}.public.event")],
        outputs=[output(f"arn:aws:sqs:{aws.region}:{url.split('/')[-2]}", "projection", 10)],
    )
    assert operator.get_openlineage_facets_on_complete(None) == expected
    lineage = extracted(operator)
    assert (lineage.inputs, lineage.outputs) == (expected.inputs, expected.outputs)


def test_a_dynamodb_store_into_an_eventbridge_bus_with_the_account(airflow_db, monkeypatch, aws):
    client = aws.client("dynamodb")
    table = create_table(client, "lineage-events", "single-table")
    put_events(client, table, "POKEMONS", DEMO_EVENTS["POKEMONS"], "single-table")
    aws.client("events").create_event_bus(Name="replays")
    account = {"aws_account_id": "123456789012"}
    set_connection(
        monkeypatch,
        "castore_event_store_default",
        **event_store_connection("dynamodb-single-table", table=table, **account),
    )
    set_connection(
        monkeypatch,
        "castore_message_channel_default",
        **message_channel_connection("eventbridge", event_bus_name="replays", **account),
    )
    operator = PourEventStoreEventsOperator(task_id="pour", event_store_id="POKEMONS")
    operator.execute({})

    lineage = extracted(operator)

    arn = f"arn:aws:{{}}:{aws.region}:123456789012"
    assert lineage.inputs == [
        InputDataset(namespace=arn.format("dynamodb"), name="table/lineage-events")
    ]
    assert lineage.outputs == [output(arn.format("events"), "event-bus/replays", 6)]


def test_a_migration_writes_the_destination_tables_and_a_dry_run_writes_nothing(
    airflow_db,
    aws,
    tables,  # noqa: F811
):
    migrate = MigrateEventStoreOperator(
        task_id="migrate",
        event_store_conn_id="castore_legacy_tables",
        destination_conn_id="castore_single_table",
        event_store_ids=["POKEMONS", "TRAINERS"],
    )
    migrate.execute({})
    dry = MigrateEventStoreOperator(
        task_id="dry",
        event_store_conn_id="castore_legacy_tables",
        destination_conn_id="castore_single_table",
        event_store_ids=["POKEMONS"],
        dry_run=True,
    )
    dry.execute({})

    lineage = extracted(migrate)
    arn = f"arn:aws:dynamodb:{aws.region}:unknown"
    assert lineage.inputs == [
        InputDataset(namespace=arn, name="table/legacy-POKEMONS"),
        InputDataset(namespace=arn, name="table/legacy-TRAINERS"),
    ]
    assert lineage.outputs == [output(arn, "table/single-table-events", 10)]
    assert extracted(dry).outputs == []
    assert extracted(dry).inputs == [InputDataset(namespace=arn, name="table/legacy-POKEMONS")]
