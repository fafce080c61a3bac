"""Cells acting on a live conversation in JupyterLab: a %%role edit, a tool while a cell runs."""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from jupyterlab_browser import (
    chromium,
    jupyterlab,
    open_notebook,
    playwright,
    run_command,
    run_in_kernel,
)
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
STDOUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'

WAIT = """\
import time


def wait(what, ready, timeout=60):
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


wait("the greeting", lambda: "agent" in set(lab.log.turns["speaker"]))
before = lab.role("demo").version
print("greeted under", before)"""

AFTER = """\
after = lab.role("demo").version
updates = lab.realtime_server.updates
wait("the edit at the model", lambda: any("heliotrope" in u.instructions for u in updates))


def said():
    turns = lab.log.turns
    return any((turns.speaker == "user") & (turns.role_version == after))


wait("a turn after the edit", said)
turns = lab.log.turns
print("versions", sorted(set(zip(turns.speaker.astype(str), turns.role_version))))
print("before", before, "after", after)"""

ROLE_EDIT_CELLS = [
    'import rico_lab\nlab = rico_lab.Lab()\nclient = lab.talk("demo")\nclient',
    WAIT,
    "%load_ext rico_lab",
    "%%role demo\nYou are the terse demo agent. The codeword is heliotrope.",
    AFTER,
]


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("cells")
    shutil.copy(REPO / "notebooks" / "03_tools.ipynb", root)
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in ROLE_EDIT_CELLS]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, root / "role_edit.ipynb")
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with jupyterlab(root, env) as url:
        yield url


@pytest.fixture(scope="module")
def page(lab_url):
    with playwright() as driver, chromium(driver, []) as page:
        yield page


def in_workspace(lab_url: str, path: str) -> str:
    """The notebook's URL in a workspace of its own, so a reload does not bring back (and
    make current) a notebook an earlier test opened."""
    workspace = path.split(".")[0]
    return lab_url.replace("/lab/tree/", f"/lab/workspaces/{workspace}/tree/").format(path=path)


def client(page: Page):
    return page.locator(".rico-voice-client")


def type_to_agent(page: Page, text: str) -> None:
    expect(client(page)).to_have_attribute("data-agent-state", "listening", timeout=30_000)
    box = client(page).locator(".rico-text-input")
    box.fill(text)
    box.press("Enter")


# a cell's own execution state: the kernel's status is no guide, as it reports "idle" after
# each widget message it handles, even while a cell runs
CELL_STATE = "window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionState"


def test_a_role_cell_reaches_the_live_conversation(lab_url, page):
    open_notebook(page, in_workspace(lab_url, "role_edit.ipynb"))
    run_command(page, "notebook:run-all-cells", wait=False)
    greeted = page.locator(".jp-OutputArea-output", has_text="greeted under")
    expect(greeted).to_be_visible(timeout=60_000)
    before = greeted.inner_text().split()[-1]
    applied = page.locator(".jp-OutputArea-output", has_text="role demo: version")
    expect(applied).to_be_visible(timeout=30_000)
    after = re.search(r"version (\w+)", applied.inner_text())[1]
    assert after != before
    # the client shows the new version, in the same connection: no reconnect
    expect(client(page)).to_have_attribute("data-role-version", after, timeout=30_000)
    expect(client(page)).to_have_attribute("data-status", "connected")
    type_to_agent(page, "said after the edit")  # the last cell is running meanwhile
    result = page.locator(STDOUT, has_text="before")
    expect(result).to_contain_text(f"before {before} after {after}", timeout=60_000)
    versions = page.locator(STDOUT, has_text="versions").inner_text()
    assert f"('agent', '{before}')" in versions and f"('user', '{after}')" in versions


def test_a_tool_updates_a_widget_while_a_cell_runs(lab_url, page):
    open_notebook(page, in_workspace(lab_url, "03_tools.ipynb"))
    run_command(page, "notebook:run-all-cells", wait=False)
    finished = page.locator(".jp-OutputArea-output", has_text="the cell finished")
    expect(finished).to_have_count(1, timeout=120_000)
    expect(client(page)).to_have_attribute("data-agent-state", "listening", timeout=30_000)
    # run the sleeping cell again, and order while it runs
    sleeper = next(i for i, c in enumerate(notebook_cells(page)) if "time.sleep(10)" in c)
    page.evaluate(
        "(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", sleeper
    )
    run_command(page, "notebook:run-cell", wait=False)
    page.wait_for_function("(i) => " + CELL_STATE + " === 'running'", arg=sleeper)
    type_to_agent(page, '/call add_item {"item": "lemonade", "quantity": 2}')
    order = page.locator(".widget-select select option", has_text="2 x lemonade")
    expect(order).to_have_count(1, timeout=8_000)
    state = page.evaluate("(i) => " + CELL_STATE, sleeper)
    assert state == "running", "the widget changed only after the cell ended"
    # the same call showed the order in the client, and the cell then finished normally
    expect(client(page).locator(".rico-panel-table")).to_contain_text("lemonade")
    expect(finished).to_contain_text("the order has 1 lines", timeout=20_000)
    # the page reported the table it showed: the record has it, with the text as on screen
    shown = client(page).locator(".rico-panel-table table").inner_text()
    ui = "print(lab.log.ui.query(\"method == 'show_table'\").iloc[-1].to_json())"
    row = json.loads(run_in_kernel(page, ui))
    assert row["answer"] == "shown 2 rows" and row["role"] == "food_order"
    on_screen = [" | ".join(line.split("\t")) for line in shown.splitlines() if line.strip()]
    assert row["text"].splitlines() == [line.strip() for line in on_screen]


def notebook_cells(page: Page) -> list[str]:
    return page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".map((c) => c.model.sharedModel.getSource())"
    )
