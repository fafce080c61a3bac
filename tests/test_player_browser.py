"""The player in JupyterLab: its turns on the timeline, and a click that seeks the audio.

The conversation is test_player.py's synthetic one. The click lands while a cell keeps the
kernel busy: seeking and playing are the page's alone; the playhead reaches Python after.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
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
from test_player import LENGTH_S, TONES

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
AGENT_START_S = TONES[1][1]
CELLS = [
    f"import sys\nfrom pathlib import Path\nsys.path.insert(0, {str(HERE)!r})\n"
    "import rico_lab\nfrom rico_lab.notebook.player import Player\n"
    "from test_player import recorded\nsession = recorded(Path('runs'))",
    "player = Player.of(rico_lab.load_log('runs'), session)\nplayer",
    "import time\ntime.sleep(120)  # the kernel stays busy while the page plays",
]
AUDIO = "document.querySelector('.rico-player audio')"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    root = tmp_path_factory.mktemp("player")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, root / "player.ipynb")
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with playwright() as driver, jupyterlab(root, env) as url, chromium(driver, []) as page:
        open_notebook(page, url.format(path="player.ipynb"))
        run_command(page, "notebook:run-all-cells", wait=False)
        yield page


def test_a_click_on_a_turn_seeks_the_audio_while_the_kernel_is_busy(page: Page):
    turns = page.locator(".rico-player .rico-player-turn")
    expect(turns).to_have_count(2, timeout=60_000)
    assert [turns.nth(i).get_attribute("data-speaker") for i in range(2)] == ["user", "agent"]
    assert float(turns.nth(1).get_attribute("data-start-s") or "nan") == AGENT_START_S
    expect(turns.nth(1).locator(".rico-player-turn-tools")).to_have_text("⚙ show_table")
    expect(turns.nth(1).locator(".rico-player-interrupted")).to_have_count(1)
    # the OGG's bytes reached the page and play: Chromium decoded them from the Blob URL
    page.wait_for_function(f"() => {AUDIO}.readyState >= 1", timeout=30_000)
    assert page.evaluate(f"() => {AUDIO}.duration") == pytest.approx(LENGTH_S, abs=0.1)
    # the sleep runs (the kernel's status is no witness: JupyterLab showed it idle meanwhile)
    sleeping = page.locator(".jp-Cell").nth(2).locator(".jp-InputPrompt")
    expect(sleeping).to_have_text("[*]:", timeout=30_000)

    turns.nth(1).click()
    at = page.evaluate(f"() => {AUDIO}.currentTime")
    assert AGENT_START_S - 0.05 <= at < AGENT_START_S + 0.5
    assert turns.nth(1).get_attribute("data-current") == ""
    # it plays on, and the playhead follows
    page.wait_for_function(f"() => !{AUDIO}.paused && {AUDIO}.currentTime > {AGENT_START_S + 0.3}")
    head = float(page.locator(".rico-player-head").get_attribute("data-position-s") or "nan")
    assert head > AGENT_START_S
    assert sleeping.inner_text() == "[*]:"  # none of it waited for the kernel

    run_command(page, "notebook:interrupt-kernel")
    expect(sleeping).not_to_have_text("[*]:", timeout=30_000)
    assert float(run_in_kernel(page, "print(player.position_s)")) > AGENT_START_S
