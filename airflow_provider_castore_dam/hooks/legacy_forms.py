"""Connection forms for the UIs of Airflow 3.0 and 3.1, which take wtforms fields from the hook
(3.2 and later read ``conn-fields`` in :func:`get_provider_info` and skip these methods). Built
from those same declarations, so every version shows one form. Airflow does not require wtforms
(its FAB provider does); this provider does, so those forms show without FAB."""

from __future__ import annotations

from typing import Any

from airflow_provider_castore_dam.get_provider_info import get_provider_info


def _declared(conn_type: str) -> dict[str, Any]:
    declared: dict[str, Any] = next(
        entry
        for entry in get_provider_info()["connection-types"]
        if entry["connection-type"] == conn_type
    )
    return declared


def connection_form_widgets(conn_type: str) -> dict[str, Any]:
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional, any_of

    widgets = {}
    for name, field in _declared(conn_type)["conn-fields"].items():
        schema = field["schema"]
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        validators: list[Any] = [Optional()] if "null" in types else []
        if "enum" in schema:
            validators.append(any_of(schema["enum"]))
        field_class = IntegerField if "integer" in types else StringField
        widgets[name] = field_class(
            field["label"],
            validators=validators,
            description=field["description"],
            default=schema.get("default"),
        )
    return widgets


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    declared = _declared(conn_type)["ui-field-behaviour"]
    behaviour = {key.replace("-", "_"): value for key, value in declared.items()}
    # Airflow 3.0's UI labels a standard field that has a placeholder but no new label with its
    # bare name ("login"): give each such field its usual label.
    usual_labels = {name: name.capitalize() for name in behaviour["placeholders"]}
    return {**behaviour, "relabeling": usual_labels | behaviour["relabeling"]}


def _hook_form_widgets(hook: type[Any]) -> dict[str, Any]:
    return connection_form_widgets(hook.conn_type)


def _hook_field_behaviour(hook: type[Any]) -> dict[str, Any]:
    return ui_field_behaviour(hook.conn_type)


connection_form_widgets_method = classmethod(_hook_form_widgets)
ui_field_behaviour_method = classmethod(_hook_field_behaviour)
