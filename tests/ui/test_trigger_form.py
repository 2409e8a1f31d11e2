"""example_castore_manual_backfill triggered from Airflow's Trigger form with values other than
its defaults: the run succeeds, its conf holds what was typed, and the task's XCom tab shows
the pour's result."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_castore_dam.stores.demo import DEMO_EVENTS
from tests.engine import oracle

pytestmark = [pytest.mark.slow, pytest.mark.ui]

DAG_ID = "example_castore_manual_backfill"


def set_datetime(page, index: int, date: str, time: str) -> None:
    """The ``index``-th date-time field of the trigger form (0 is the logical date)."""
    page.get_by_role("dialog").get_by_test_id("datetime-input").nth(index).click()
    picker = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    picker.locator("input").nth(0).fill(date)
    picker.locator("input").nth(1).fill(time)
    page.keyboard.press("Escape")


def test_a_backfill_triggered_from_the_form(page, airflow_ui):
    airflow_ui.wait_for_dag(DAG_ID)
    before = {
        r["dag_run_id"] for r in airflow_ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
    }

    page.goto(f"{airflow_ui.api_url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.get_by_role("dialog")
    form.locator("textarea[name=element_event_store_ids]").fill("POKEMONS")
    # Airflow 3.0's form sends a date-time param with a second zone ("...000Z+00:00"), which
    # its API then refuses: there the window stays open.
    window = ("2021-01-01T00:00:00.000Z", "2022-12-31T23:59:00.000Z")
    if AIRFLOW_V_3_1_PLUS:
        set_datetime(page, 1, "2021/01/01", "00:00")
        set_datetime(page, 2, "2022/12/31", "23:59")
    else:
        window = (None, None)
    form.locator("input[name=element_rate_limit]").fill("50")
    form.locator('[id="switch:element_dry_run"]').click()  # off: pour for real
    form.get_by_role("button", name="Trigger").last.click()

    def new_run() -> str | None:
        runs = airflow_ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
        return next((r["dag_run_id"] for r in runs if r["dag_run_id"] not in before), None)

    from tests.celery.harness import wait_for

    run_id = wait_for("the triggered run", new_run, 30)
    assert airflow_ui.wait_for_run(DAG_ID, run_id) == "success", airflow_ui.diagnostics()
    run = airflow_ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id)}")
    assert {
        key: run["conf"][key] for key in ("event_store_ids", "from", "to", "rate_limit", "dry_run")
    } == {
        "event_store_ids": ["POKEMONS"],
        "from": window[0],
        "to": window[1],
        "rate_limit": 50,
        "dry_run": False,
    }
    xcom = airflow_ui.api(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id)}/taskInstances/backfill/xcomEntries/return_value",
    )["value"]
    expected = oracle.pour_order({"POKEMONS": DEMO_EVENTS["POKEMONS"]}, *window)
    assert "dry_run" not in xcom and xcom["poured_event_count"] == len(expected) > 0

    page.goto(f"{airflow_ui.api_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/backfill")
    page.get_by_role("link", name="Logs", exact=True).wait_for()
    storage = page.get_by_role("link", name="Storage")  # Airflow 3.3 keeps XCom under it
    if storage.count():
        storage.click()
    page.get_by_text("XCom", exact=True).click()
    page.get_by_role("cell", name="return_value", exact=True).wait_for()
    expand = page.get_by_role("button", name="Expand all extra JSON")
    if expand.count():  # Airflow 3.3: a JSON viewer
        expand.click()
        shown = xcom_value_text(page)
    else:  # Airflow 3.0: the value's Python repr, as text
        row = page.get_by_role("row", name="return_value")
        cell = row.get_by_role("cell").filter(has_text="poured_event_count")
        shown = cell.inner_text().replace("'", '"')
    assert f'"poured_event_count": {len(expected)}' in shown
    assert f'"hash": "{xcom["digest"]["event_stores"]["POKEMONS"]["hash"]}"' in shown
    assert '"last_scanned_aggregate"' in shown


def xcom_value_text(page) -> str:
    """The text of the XCom value's viewer (a Monaco editor, which renders only the lines in
    view, each at its offset from the top): scrolled with the mouse wheel to the end, every
    line seen, in order."""
    editor = page.locator("td .monaco-editor").first
    editor.hover()
    lines: dict[float, str] = {}
    for _ in range(80):
        shown = editor.locator(".view-line").evaluate_all(
            "rows => rows.map(r => [parseFloat(r.style.top), r.innerText])"
        )
        before = len(lines)
        lines.update((top, text.replace("\xa0", " ")) for top, text in shown)
        if len(lines) == before and before:
            break
        page.mouse.wheel(0, 150)
        page.wait_for_timeout(150)
    return "\n".join(text for _, text in sorted(lines.items()))
