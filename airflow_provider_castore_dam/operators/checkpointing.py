"""A pour task's checkpoint, kept where it survives an Airflow retry of the task.

On Airflow 3.3 and later that is the task instance's state store (``context["task_state_store"]``),
which a manual clear drops. Before 3.3 it is an Airflow Variable of the task instance
(:class:`VariableStateStore`): XComs would not do on any version (they are cleared before each
try), and task code in Airflow 3 cannot reach the metadata database to keep a table of its own,
while Variables are read and written through the Task SDK. The operator saves the engine's
checkpoint after every confirmed batch, so a retried try resumes where the failed one stopped,
and deletes it once the pour is done.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Variable

from airflow_provider_castore_dam.dam.checkpoints import Checkpoint
from airflow_provider_castore_dam.errors import InvalidPourInputError

CHECKPOINT_KEY = "castore_dam_checkpoint"


def rendered_checkpoint(value: Any) -> dict[str, Any] | None:
    """``resume_from`` as given or rendered: a checkpoint dict, its JSON text, or empty."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            shown = value if len(value) <= 80 else value[:77] + "..."
            raise InvalidPourInputError(
                f"resume_from must be a checkpoint (a dict or its JSON), not {shown!r}: {error}"
            ) from error
    if not isinstance(value, Mapping):
        raise InvalidPourInputError(
            f"resume_from must be a checkpoint (a dict or its JSON), not {value!r}"
        )
    return dict(value)


class TaskCheckpoints:
    """Where a pour task reads and saves its checkpoint."""

    def __init__(self, state_store: Any, resume_from: Any) -> None:
        self._state_store = state_store
        self._resume_from = rendered_checkpoint(resume_from)
        self.last: Checkpoint | None = None

    @classmethod
    def of(cls, context: Mapping[str, Any], resume_from: Any) -> TaskCheckpoints:
        return cls(state_store(context), resume_from)

    @property
    def kept_across_retries(self) -> bool:
        """False without a task instance in the context (an operator run by hand): a retry
        then starts over."""
        return self._state_store is not None

    def saved(self) -> dict[str, Any] | None:
        """The checkpoint an earlier try of this task instance saved, if any."""
        if self._state_store is None:
            return None
        saved = self._state_store.get(CHECKPOINT_KEY)
        return dict(saved) if isinstance(saved, Mapping) else None

    def given(self) -> dict[str, Any] | None:
        """The checkpoint given as ``resume_from``, if any."""
        return self._resume_from

    def save(self, checkpoint: Checkpoint) -> None:
        self.last = checkpoint
        if self._state_store is not None:
            self._state_store.set(CHECKPOINT_KEY, dict(checkpoint))

    def finished(self) -> None:
        if self._state_store is not None:
            self._state_store.delete(CHECKPOINT_KEY)


def state_store(context: Mapping[str, Any]) -> Any:
    """The task instance's state store (Airflow 3.3+), else its Variable (before 3.3)."""
    if "task_state_store" in context:
        return context["task_state_store"]
    ti = context.get("ti")
    return None if ti is None else VariableStateStore(ti)


class VariableStateStore:
    """A task instance's checkpoint in an Airflow Variable, for Airflow before 3.3.

    Like the state store of 3.3, it is kept across retries and forgotten by a manual clear: a
    clear raises the task instance's ``max_tries``, a retry does not, so a checkpoint saved
    under another ``max_tries`` is ignored (and overwritten by the next save). A pour that
    fails for good and is never cleared leaves its Variable; its description names the task.
    """

    def __init__(self, ti: Any) -> None:
        identity = [ti.dag_id, ti.task_id, ti.run_id, ti.map_index]
        digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
        self.variable_key = f"{CHECKPOINT_KEY}_{digest}"
        self._description = (
            f"Checkpoint of the pour task {ti.dag_id}.{ti.task_id} (map index {ti.map_index}) "
            f"of run {ti.run_id}, kept across retries; deleted when the pour is done"
        )
        self._max_tries = ti.max_tries
        self._exists = False

    def get(self, key: str) -> Any:
        text = Variable.get(self.variable_key, default=None)
        saved = None if text is None else json.loads(text)
        self._exists = self._exists or saved is not None
        if not isinstance(saved, Mapping) or saved.get("max_tries") != self._max_tries:
            return None
        return saved.get(key)

    def set(self, key: str, value: Any) -> None:
        # JSON handled here: Airflow 3.0's (de)serialize_json hands dicts on where text is due.
        Variable.set(
            self.variable_key,
            json.dumps({"max_tries": self._max_tries, key: value}),
            description=self._description,
        )
        self._exists = True

    def delete(self, key: str) -> None:
        if self._exists:  # deleting a missing Variable logs an error on Airflow 3.0
            Variable.delete(self.variable_key)
            self._exists = False
