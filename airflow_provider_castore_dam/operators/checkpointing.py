"""A pour task's checkpoint, kept in the task instance's state store (Airflow 3.3).

The state store (``context["task_state_store"]``) survives an Airflow retry of the task and is
dropped by a manual clear; XComs would not do (they are cleared before each try). The operator
saves the engine's checkpoint there after every confirmed batch, so a retried try resumes
where the failed one stopped, and deletes it once the pour is done.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
        return cls(context.get("task_state_store"), resume_from)

    @property
    def kept_across_retries(self) -> bool:
        """False without a state store (Airflow < 3.3): a retry then starts over."""
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
