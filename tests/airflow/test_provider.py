"""Provider registration: the info dict against Airflow's schemas, and Airflow finding it."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_castore_dam import __version__
from airflow_provider_castore_dam.get_provider_info import get_provider_info

AIRFLOW_PACKAGE = Path(__import__("airflow").__file__).parent


def schema(name: str) -> dict:
    return json.loads((AIRFLOW_PACKAGE / name).read_text())


def test_provider_info_is_valid_for_the_runtime_schema():
    jsonschema.validate(get_provider_info(), schema("provider_info.schema.json"))


def test_connection_forms_are_valid_for_the_provider_yaml_schema():
    """The runtime schema does not check conn-fields; a typo there would silently break the
    UI form, so they are validated against the stricter provider.yaml schema."""
    yaml_schema = schema("provider.yaml.schema.json")
    connection_types = {
        **yaml_schema["properties"]["connection-types"],
        "definitions": yaml_schema.get("definitions", {}),
    }
    info = get_provider_info()
    jsonschema.validate(info["connection-types"], connection_types)
    assert [c["connection-type"] for c in info["connection-types"]] == [
        "castore_event_store",
        "castore_message_channel",
    ]
    for connection_type in info["connection-types"]:
        fields = connection_type["conn-fields"]
        assert fields["kind"]["schema"]["type"] == "string"  # required in the form
        optional = [
            name
            for name, field in fields.items()
            if name != "kind" and "enum" not in field["schema"]
        ]
        assert all("null" in fields[name]["schema"]["type"] for name in optional), optional


def test_package_name_and_version_match_the_distribution():
    assert get_provider_info()["package-name"] == "airflow-provider-castore-dam"
    assert metadata.version("airflow-provider-castore-dam") == __version__
    entry_points = metadata.entry_points(group="apache_airflow_provider")
    assert any(
        ep.value == "airflow_provider_castore_dam.get_provider_info:get_provider_info"
        for ep in entry_points
    )


def airflow_cli(*arguments: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "airflow", *arguments], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_airflow_providers_list_shows_the_provider_with_its_version():
    rows = [line for line in airflow_cli("providers", "list").splitlines() if "castore" in line]
    assert len(rows) == 1
    assert "airflow-provider-castore-dam" in rows[0]
    assert __version__ in rows[0]


def test_hooks_are_registered_for_both_connection_types():
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Providers
    except ImportError:  # Airflow < 3.2
        from airflow.providers_manager import ProvidersManager as Providers

    hooks = Providers().hooks
    assert hooks["castore_event_store"].hook_class_name.endswith("CastoreEventStoreHook")
    assert hooks["castore_message_channel"].hook_class_name.endswith("CastoreMessageChannelHook")
    assert hooks["castore_event_store"].hook_name == "Castore Event Store"


@pytest.mark.parametrize(
    "declared",
    get_provider_info()["connection-types"],
    ids=lambda declared: declared["connection-type"],
)
def test_the_ui_gets_the_declared_connection_form(declared):
    """What the UI's connection form is built from, on this Airflow: the declared
    ``conn-fields`` (3.2+) or the hook's wtforms fields made from them (3.0, 3.1)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    [meta] = [
        hook.model_dump(mode="json")
        for hook in HookMetaService.hook_meta_data()
        if hook.connection_type == declared["connection-type"]
    ]
    assert meta["hook_name"] == declared["hook-name"]
    fields = meta["extra_fields"]
    assert list(fields) == list(declared["conn-fields"])
    for name, field in declared["conn-fields"].items():
        shown = fields[name]
        assert shown["schema"]["title"] == field["label"]
        assert (shown["description"] or "") == field["description"]
        assert shown["value"] == field["schema"].get("default")
        assert shown["schema"].get("enum") == field["schema"].get("enum")
    behaviour = declared["ui-field-behaviour"]
    standard = {name: meta["standard_fields"][standard_name(name)] or {} for name in STANDARD}
    assert {name for name, shown in standard.items() if shown.get("hidden")} == set(
        behaviour["hidden-fields"]
    ) - {"extra"}
    for name, label in behaviour["relabeling"].items():
        assert standard[name]["title"] == label
    for name, placeholder in behaviour["placeholders"].items():
        assert standard[name]["placeholder"] == placeholder


STANDARD = ("host", "port", "login", "password", "schema")


def standard_name(field: str) -> str:
    return "url_schema" if field == "schema" else field


@pytest.mark.usefixtures("airflow_db")
def test_example_dags_parse_without_import_errors():
    """``dags reserialize`` parses the DAGs folder (example_dags/) into the metadata database,
    recording import errors as the DAG processor would."""
    airflow_cli("dags", "reserialize")

    assert "No data found" in airflow_cli("dags", "list-import-errors")
    listed = airflow_cli("dags", "list", "--output", "json")
    dag_ids = {dag["dag_id"] for dag in json.loads(listed[listed.index("[{") :])}
    assert dag_ids == {
        "example_castore_scheduled_migration",
        "example_castore_manual_backfill",
        "example_castore_pour_and_check",
        "example_castore_partitioned_backfill",
        "example_castore_integrity_audit",
        "example_castore_store_migration",
        "example_castore_daily_replay",
        "example_castore_after_migration",
    }
