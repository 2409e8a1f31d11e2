"""Each Castore connection type's form in Airflow's UI: its fields and labels, the standard
fields it hides or relabels; connections saved from the form, and one tested with its Test
button."""

from __future__ import annotations

import json
import uuid

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_castore_dam.get_provider_info import get_provider_info
from airflow_provider_castore_dam.stores.postgres.tables import create_castore_table

pytestmark = [pytest.mark.slow, pytest.mark.ui]

STANDARD = {
    "description": "Description",
    "host": "Host",
    "login": "Login",
    "password": "Password",
    "port": "Port",
    "schema": "Schema",
}


TYPES = {item["hook-name"]: item for item in get_provider_info()["connection-types"]}


def open_form(page, airflow_ui, hook_name: str, extra: bool = True):
    """The Add Connection dialog with ``hook_name`` chosen, its Standard Fields open (or,
    with ``extra``, its Extra Fields: one section is open at a time)."""
    page.goto(f"{airflow_ui.api_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").first.fill(hook_name)
    page.keyboard.press("Enter")
    dialog.get_by_role("button", name="Standard Fields", exact=True).wait_for()
    if extra:
        open_section(dialog, "Extra Fields")
    return dialog


def save(dialog, conn_id: str) -> None:
    dialog.get_by_role("button", name="Save").click()
    dialog.page.get_by_role("row", name=conn_id).wait_for()


def press_test(page, conn_id: str) -> dict:
    """Press the connection's Test button; what the API answered the UI."""
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as answer:
        page.get_by_role("row", name=conn_id).get_by_role("button", name="Test Connection").click()
    response = answer.value
    assert response.status == 200, response.text()
    return dict(response.json())


def open_section(dialog, name: str) -> None:
    """Open one of the form's sections; the open one closes (animated): wait until it has."""
    from playwright.sync_api import expect

    other = "Standard Fields" if name == "Extra Fields" else "Extra Fields"
    dialog.get_by_role("button", name=name, exact=True).click()
    expect(dialog.get_by_role("button", name=other, exact=True)).to_have_attribute(
        "aria-expanded", "false"
    )
    dialog.page.wait_for_timeout(600)  # the closing section's animation


def choose(dialog, label: str, value: str) -> None:
    """Choose ``value`` in the select field labelled ``label``: a combobox to type in (Airflow
    3.3) or a list to open (3.0)."""
    field = dialog.locator("[data-scope=field]", has_text=label).get_by_role("combobox")
    if field.evaluate("element => element.tagName") == "INPUT":
        field.fill(value)
        dialog.page.keyboard.press("Enter")
    else:
        field.click()
        dialog.page.get_by_role("option", name=value, exact=True).click()


def visible_labels(dialog) -> list[str]:
    """The labels of the fields on screen, in order, read at once."""
    texts = dialog.locator("label.chakra-field__label").evaluate_all(
        "labels => labels.filter(l => l.getClientRects().length).map(l => l.innerText)"
    )
    return [" ".join(text.replace("*", "").split()) for text in texts]


@pytest.mark.parametrize("hook_name", sorted(TYPES))
def test_each_form_shows_its_fields_and_hides_what_it_does_not_use(page, airflow_ui, hook_name):
    declared = TYPES[hook_name]
    behaviour = declared["ui-field-behaviour"]

    dialog = open_form(page, airflow_ui, hook_name, extra=False)
    standard = visible_labels(dialog)
    for name, placeholder in behaviour["placeholders"].items():
        assert dialog.locator(f"input[name={name}]").get_attribute("placeholder") == placeholder
    open_section(dialog, "Extra Fields")
    extra = visible_labels(dialog)

    top = ["Connection ID", "Connection Type"]
    assert standard == [
        *top,
        *(
            behaviour["relabeling"].get(name, label)
            for name, label in STANDARD.items()
            if name not in behaviour["hidden-fields"]
        ),
    ]
    assert extra == [*top, *(field["label"] for field in declared["conn-fields"].values())]
    hidden = [STANDARD[name] for name in behaviour["hidden-fields"] if name != "extra"]
    assert not set(hidden) & set(standard)  # (Airflow's UI always shows the extra's JSON)


def test_a_channel_saved_from_the_form_keeps_its_fields_in_the_extra(page, airflow_ui):
    """(Its Test button is not pressed: Airflow 3.3.2's UI sends port 0 for a connection
    without one, which its API then refuses as "a host or port that differs from the stored
    connection"; a store with a port passes its test below.)"""
    conn_id = f"ui_channel_{uuid.uuid4().hex[:6]}"
    dialog = open_form(page, airflow_ui, "Castore Message Channel")
    dialog.locator("input[name=connection_id]").fill(conn_id)
    choose(dialog, "Kind", "in-memory")
    save(dialog, conn_id)

    saved = airflow_ui.api("GET", f"/api/v2/connections/{conn_id}")
    assert saved["conn_type"] == "castore_message_channel"
    extra = json.loads(saved["extra"])
    assert extra["kind"] == "in-memory"
    assert extra["max_in_flight"] == 16  # the field's default, as the form filled it


def test_a_postgres_store_saved_from_the_form_passes_its_test(page, airflow_ui, postgres_server):
    database = postgres_server.create_database("castore_ui_store")
    try:
        create_castore_table(postgres_server.dsn(database), "event")
        conn_id = f"ui_store_{uuid.uuid4().hex[:6]}"
        dialog = open_form(page, airflow_ui, "Castore Event Store", extra=False)
        dialog.locator("input[name=connection_id]").fill(conn_id)
        dialog.locator("input[name=host]").fill(postgres_server.host)
        dialog.locator("input[name=port]").fill(str(postgres_server.port))
        dialog.locator("input[name=login]").fill(postgres_server.user)
        if postgres_server.password:
            dialog.locator("input[name=password]").fill(postgres_server.password)
        dialog.locator("input[name=schema]").fill(database)
        open_section(dialog, "Extra Fields")
        choose(dialog, "Kind", "postgres")
        save(dialog, conn_id)

        saved = airflow_ui.api("GET", f"/api/v2/connections/{conn_id}")
        assert (saved["host"], saved["port"], saved["schema"]) == (
            postgres_server.host,
            postgres_server.port,
            database,
        )
        assert json.loads(saved["extra"])["kind"] == "postgres"
        if not AIRFLOW_V_3_1_PLUS:
            return  # Airflow 3.0's UI has no Test button
        assert press_test(page, conn_id) == {
            "status": True,
            "message": "postgres event store connection works",
        }
    finally:
        postgres_server.drop_database(database)
