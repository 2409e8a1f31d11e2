"""A pour spread over mapped tasks: plan the partitions, pour each one, combine the results.

``PourEventStoreEventsOperator.partitioned(task_id="pour", partitions=8, ...)`` builds a task
group ``pour`` of three tasks:

- ``pour.plan_partitions`` returns the ``partitions`` partition specs
  (``{"index": i, "count": N}``);
- ``pour.pour_partition`` is the operator, ``.expand()``-ed over them: one mapped task per
  partition, each pouring its aggregates in pour order with its own checkpoint (the task
  state store is per map index), so each retries and resumes on its own, on any worker;
- ``pour.combine_partitions`` returns the whole pour's result (counts added; first and last
  scanned aggregates the earliest and latest), once every partition succeeded.

The group's :attr:`PartitionedPour.output` is the combined result, for downstream tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator, TaskGroup, XComArg, task

from airflow_provider_castore_dam.dam.results import combine_partition_results
from airflow_provider_castore_dam.errors import InvalidPourInputError
from airflow_provider_castore_dam.partitions import MAX_PARTITIONS


class PartitionedPour(TaskGroup):
    """The task group of a partitioned pour (see the module)."""

    combined: XComArg

    @property
    def output(self) -> XComArg:
        """The combined result of every partition's pour."""
        return self.combined


def partition_count(partitions: object) -> int:
    """``partitions`` checked against Airflow's ``[core] max_map_length`` (mapped tasks
    beyond it would fail the run when it expands, not when the DAG is parsed)."""
    limit = min(conf.getint("core", "max_map_length"), MAX_PARTITIONS)
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise InvalidPourInputError(f"partitions must be a positive integer, not {partitions!r}")
    if partitions > limit:
        raise InvalidPourInputError(
            f"partitions={partitions} is more than Airflow's [core] max_map_length ({limit}): "
            "use fewer partitions, or raise max_map_length"
        )
    return partitions


@task(task_id="plan_partitions")
def plan_partitions(count: int) -> list[dict[str, int]]:
    """One partition spec per mapped pour task."""
    return [{"index": index, "count": partition_count(count)} for index in range(count)]


@task(task_id="combine_partitions")
def combine_partitions(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole pour's result from the partitions' results."""
    # A slice reads every partition's XCom in one request (iterating asks one past the end).
    return combine_partition_results(list(results[:]))


def partitioned_pour(
    operator_class: type[BaseOperator],
    *,
    task_id: str,
    partitions: int,
    **operator_kwargs: Any,
) -> PartitionedPour:
    """The task group pouring ``partitions`` partitions with ``operator_class``."""
    count = partition_count(partitions)
    if "partition" in operator_kwargs:
        raise InvalidPourInputError("partitioned pours choose each task's partition themselves")
    group = PartitionedPour(group_id=task_id)
    with group:
        plan = plan_partitions(count)
        pours = operator_class.partial(task_id="pour_partition", **operator_kwargs).expand(
            partition=plan
        )
        group.combined = combine_partitions(pours.output)  # type: ignore[arg-type]
    return group
