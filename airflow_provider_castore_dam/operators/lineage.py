"""OpenLineage for the pour operators: the stores read (inputs), the queue, bus or event store
written (outputs) with the messages poured as the output's row count.

The pour operators keep what they read and wrote (:class:`PourLineage`) and give it to the
OpenLineage provider through ``get_openlineage_facets_on_complete``; the provider is optional
(``pip install 'airflow-provider-castore-dam[openlineage]'``) and imported only then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Dataset = tuple[str, str]


@dataclass
class PourLineage:
    inputs: list[Dataset] = field(default_factory=list)
    outputs: dict[Dataset, int] = field(default_factory=dict)
    """Per dataset written, the messages poured into it."""

    def wrote(self, dataset: Dataset, count: int) -> None:
        self.outputs[dataset] = self.outputs.get(dataset, 0) + count

    def read(self, datasets: Iterable[Dataset]) -> None:
        for dataset in datasets:  # stores of one table are one dataset
            if dataset not in self.inputs:
                self.inputs.append(dataset)


def operator_lineage(lineage: PourLineage | None) -> Any:
    """The OpenLineage provider's ``OperatorLineage`` of a pour (empty before it ran)."""
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    if lineage is None:
        return OperatorLineage()
    return OperatorLineage(
        inputs=[InputDataset(namespace=space, name=name) for space, name in lineage.inputs],
        outputs=[
            OutputDataset(
                namespace=space,
                name=name,
                outputFacets={
                    "outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=count)
                },
            )
            for (space, name), count in lineage.outputs.items()
        ],
    )
