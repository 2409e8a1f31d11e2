"""Where a pour task keeps its checkpoint: the task state store (Airflow 3.3+), else a Variable
of the task instance that a retry finds and a manual clear forgets. The retried pours of
``test_example_dags`` run both through Airflow; here, what each store decides."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_castore_dam.operators import checkpointing
from airflow_provider_castore_dam.operators.checkpointing import (
    CHECKPOINT_KEY,
    TaskCheckpoints,
    VariableStateStore,
    state_store,
)

CHECKPOINT = {"format": 1, "utility": "pour_event_store_events", "positions": {}, "result": {}}


class Variables:
    """Airflow's Variables, as a dict: what the Task SDK would read and write."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.descriptions: dict[str, str | None] = {}
        self.deletes: list[str] = []

    def get(self, key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        assert not deserialize_json
        return json.dumps(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any, description: str | None = None, serialize_json=False):
        assert isinstance(value, str) and not serialize_json  # JSON text, as every version keeps
        self.values[key] = json.loads(value)
        self.descriptions[key] = description

    def delete(self, key: str) -> None:
        self.deletes.append(key)
        del self.values[key]


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> Variables:
    fake = Variables()
    monkeypatch.setattr(checkpointing, "Variable", fake)
    return fake


def task_instance(max_tries: int = 3, **identity: Any) -> SimpleNamespace:
    names = {"dag_id": "backfill", "task_id": "pour", "run_id": "manual__1", "map_index": -1}
    return SimpleNamespace(**{**names, **identity}, max_tries=max_tries)


def test_the_task_state_store_is_used_when_airflow_has_one():
    store = object()
    assert state_store({"task_state_store": store, "ti": task_instance()}) is store


def test_before_airflow_3_3_the_task_instance_variable_is_used():
    assert isinstance(state_store({"ti": task_instance()}), VariableStateStore)
    assert state_store({}) is None
    assert not TaskCheckpoints.of({}, None).kept_across_retries


def test_a_retry_finds_the_checkpoint_and_the_finished_pour_deletes_it(variables):
    first_try = TaskCheckpoints(VariableStateStore(task_instance()), None)
    first_try.save(CHECKPOINT)  # type: ignore[arg-type]
    [key] = variables.values
    assert key.startswith(f"{CHECKPOINT_KEY}_")
    assert "backfill.pour (map index -1) of run manual__1" in str(variables.descriptions[key])

    retry = TaskCheckpoints(VariableStateStore(task_instance()), None)
    assert retry.saved() == CHECKPOINT
    retry.finished()
    assert variables.values == {} and variables.deletes == [key]


def test_a_manual_clear_raises_max_tries_and_starts_the_pour_over(variables):
    TaskCheckpoints(VariableStateStore(task_instance(max_tries=3)), None).save(CHECKPOINT)  # type: ignore[arg-type]

    after_clear = TaskCheckpoints(VariableStateStore(task_instance(max_tries=7)), None)
    assert after_clear.saved() is None
    after_clear.finished()  # the stale checkpoint goes too
    assert variables.values == {}


def test_each_task_instance_has_its_own_variable(variables):
    identities = [
        {},
        {"map_index": 0},
        {"map_index": 1},
        {"run_id": "manual__2"},
        {"task_id": "pour_trainers"},
        {"dag_id": "other"},
    ]
    for identity in identities:
        VariableStateStore(task_instance(**identity)).set("checkpoint", CHECKPOINT)
    assert len(variables.values) == len(identities)
    assert all("/" not in key and len(key) <= 250 for key in variables.values)


def test_a_pour_that_saved_nothing_deletes_nothing(variables):
    checkpoints = TaskCheckpoints(VariableStateStore(task_instance()), None)
    assert checkpoints.saved() is None
    checkpoints.finished()
    assert variables.deletes == []
