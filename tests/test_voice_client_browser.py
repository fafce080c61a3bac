import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from jupyterlab_browser import (
    chromium,
    contrast,
    fake_microphone,
    jupyterlab,
    open_notebook,
    playwright,
    run_command,
)
from playwright.sync_api import Page, expect
from rtc_participant import in_room

from rico_lab.livekit_server import LiveKitServer
from rico_lab.local_model.speech import synthesize, write_wav

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / ".artifacts"
RATE = 48000


@pytest.fixture(scope="module")
def user_wav(tmp_path_factory):
    """What the fake microphone plays, once: quiet while the agent greets, then a
    sentence, then quiet long enough for the turn to end."""
    sentence = synthesize("Hello there. What can you do for me today?", sample_rate=RATE)
    quiet = np.zeros(RATE * 8, np.int16)
    path = tmp_path_factory.mktemp("mic") / "user.wav"
    write_wav(path, np.concatenate([quiet, sentence, quiet[: RATE * 6]]), RATE)
    return path


@pytest.fixture(scope="module")
def driver():
    with playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory, user_wav, livekit, driver):
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(REPO / "notebooks" / "01_talk.ipynb", root)
    # the lab in the kernel uses this server, so the test knows the secret it must never
    # find in the page or the saved notebook
    env = {
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with jupyterlab(root, env) as url, chromium(driver, fake_microphone(user_wav)) as page:
        open_notebook(page, url.format(path="01_talk.ipynb"))
        run_command(page, "notebook:run-all-cells")
        yield root, page


def client(page: Page):
    return page.locator(".rico-voice-client")


def agent_audio_ms(page: Page) -> float:
    return float(client(page).get_attribute("data-agent-audio-ms") or 0)


def test_connects_and_plays_the_greeting(lab_page):
    _, page = lab_page
    expect(client(page)).to_have_attribute("data-status", "connected", timeout=60_000)
    expect(client(page).locator(".rico-model-badge")).to_contain_text("LOCAL")
    greeting = client(page).locator(".rico-line.rico-agent").first
    expect(greeting).to_contain_text("Local model here.", timeout=30_000)
    page.wait_for_function(
        "() => +document.querySelector('.rico-voice-client').dataset.agentAudioMs > 1500",
        timeout=30_000,
    )
    assert float(client(page).get_attribute("data-agent-audio-peak")) > 0.02


def test_a_cell_run_while_the_agent_talks_completes(lab_page):
    _, page = lab_page
    expect(
        page.locator(".jp-OutputArea-output", has_text="ran while the agent kept talking")
    ).to_be_visible(timeout=60_000)


def test_spoken_turn_shows_user_line_and_agent_reply(lab_page):
    _, page = lab_page
    expect(client(page)).to_have_attribute("data-mic", "on")
    expect(client(page).locator(".rico-line.rico-user").first).to_contain_text(
        "speech", timeout=60_000
    )
    reply = client(page).locator(".rico-line.rico-agent", has_text=re.compile(r"Turn 1: I heard"))
    expect(reply).to_be_visible(timeout=30_000)


def test_typed_message_gets_a_reply(lab_page):
    _, page = lab_page
    type_to_agent(page, "What is two plus two?")
    expect(
        client(page).locator(".rico-line.rico-user", has_text="What is two plus two?")
    ).to_be_visible()
    reply = client(page).locator(
        ".rico-line.rico-agent", has_text="you wrote: What is two plus two?"
    )
    expect(reply).to_be_visible(timeout=30_000)


def type_to_agent(page: Page, text: str) -> None:
    """Type once the microphone's one sentence has been answered and the agent has finished
    speaking: speech, or typing, while the agent speaks interrupts it."""
    spoken = client(page).locator(".rico-line.rico-agent", has_text=re.compile(r"I heard"))
    expect(spoken.first).to_be_visible(timeout=60_000)
    expect(client(page)).to_have_attribute("data-agent-state", "listening", timeout=30_000)
    box = client(page).locator(".rico-text-input")
    box.fill(text)
    box.press("Enter")


def test_a_tool_shows_markdown_in_a_panel(lab_page):
    _, page = lab_page
    type_to_agent(page, '/call show_info {"title": "Steps", "markdown": "1. **Mix**\\n2. Bake"}')
    panel = client(page).locator(".rico-panel-markdown")
    expect(panel.locator("strong", has_text="Mix")).to_be_visible(timeout=30_000)
    expect(panel.locator("li")).to_have_count(2)
    expect(panel.locator(".rico-panel-title")).to_have_text("Steps")
    reply = client(page).locator(
        ".rico-line.rico-agent", has_text="The tool show_info returned shown"
    )
    expect(reply).to_be_visible(timeout=30_000)


def test_ask_waits_for_the_users_click_and_returns_it(lab_page):
    _, page = lab_page
    type_to_agent(page, '/call ask {"question": "Which colour?", "choices": ["red", "blue"]}')
    choice = client(page).locator(".rico-choice", has_text="blue")
    expect(choice).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1500)  # the call waits for the user, however long they take
    choice.click()
    reply = client(page).locator(".rico-line.rico-agent", has_text="The tool ask returned blue.")
    expect(reply).to_be_visible(timeout=30_000)


def test_a_failing_tool_is_shown_and_the_conversation_goes_on(lab_page):
    _, page = lab_page
    type_to_agent(page, '/call ask {"question": "Pick one"}')  # no choices: the client refuses
    error = client(page).locator(".rico-error")
    expect(error).to_contain_text("Tool ask failed:", timeout=30_000)
    expect(error).to_contain_text("exactly one of 'choices'")
    # the conversation goes on (what the model is told: tests/test_tools.py; here the looping
    # fake microphone may talk over the agent's reading of it)
    agent_lines = client(page).locator(".rico-line.rico-agent")
    said = agent_lines.count()
    type_to_agent(page, "still there?")
    expect(agent_lines).not_to_have_count(said, timeout=30_000)


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_readable_in_light_and_dark_themes(lab_page, theme):
    _, page = lab_page
    expect(client(page).locator(".rico-line.rico-agent").first).to_be_visible(timeout=60_000)
    run_command(page, "apputils:change-theme", {"theme": theme})
    page.wait_for_function(
        "(t) => document.body.dataset.jpThemeName === t", arg=theme, timeout=30_000
    )
    page.wait_for_timeout(500)
    for selector in (".rico-line.rico-agent", ".rico-state", ".rico-text-input"):
        assert contrast(page, f".rico-voice-client {selector}") >= 4.5, (theme, selector)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = "voice_client_" + theme.split()[-1].lower() + ".png"
    client(page).screenshot(path=ARTIFACTS / name)


def test_no_secret_in_page_widget_state_or_saved_notebook(lab_page, livekit):
    root, page = lab_page
    expect(client(page)).to_have_attribute("data-status", "connected", timeout=60_000)
    assert livekit.api_secret not in page.content()
    run_command(page, "docmanager:save")
    page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000
    )
    saved = (root / "01_talk.ipynb").read_text()
    assert "application/vnd.jupyter.widget-state+json" in saved  # widget state was saved
    assert livekit.api_secret not in saved


def participants(server: LiveKitServer, room: str) -> set[str]:
    """Who the LiveKit server has in ``room`` (nobody once the room is gone)."""
    return {p.identity for p in in_room(server.url, server.api_key, server.api_secret, room)}


def room_of(page: Page) -> str:
    return client(page).locator(".rico-role").get_attribute("title").removeprefix("room ")


def wait_until_empty(server: LiveKitServer, room: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while (left := participants(server, room)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"still in room {room}: {left}"


def test_rerunning_or_clearing_the_cell_disconnects_the_client(lab_page, livekit):
    """Runs last on this page: re-running the talk cell leaves the old conversation (user
    and agent) and starts a new one in a room of its own; clearing the output leaves too."""
    _, page = lab_page
    expect(client(page)).to_have_attribute("data-status", "connected", timeout=60_000)
    first = room_of(page)
    assert len(participants(livekit, first)) == 2  # the user and the agent
    talk = next(i for i, c in enumerate(code_cells(page)) if c and "lab.talk(" in c)
    page.evaluate(
        "(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", talk
    )
    run_command(page, "notebook:run-cell")
    # the new output replaces the old client: one client, in a room of its own
    expect(client(page).locator(".rico-role")).not_to_have_attribute(
        "title", f"room {first}", timeout=30_000
    )
    expect(client(page)).to_have_count(1)
    expect(client(page)).to_have_attribute("data-status", "connected", timeout=60_000)
    second = room_of(page)
    wait_until_empty(livekit, first)
    expect(client(page).locator(".rico-line.rico-agent").first).to_contain_text(
        "Local model here.", timeout=30_000
    )
    assert len(participants(livekit, second)) == 2

    run_command(page, "notebook:clear-cell-output")
    expect(client(page)).to_have_count(0)
    wait_until_empty(livekit, second)


def code_cells(page: Page) -> list[str | None]:
    """The open notebook's code, by cell index (None for other cells)."""
    return page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".map((c) => c.model.type === 'code' ? c.model.sharedModel.getSource() : null)"
    )


ERROR_CELLS = [
    "import rico_lab\nfrom livekit import api\n"
    "from rico_lab.protocol import JoinInfo\n"
    "from rico_lab.notebook.voice_client import VoiceClient\n"
    "lab = rico_lab.Lab()",
    'lab.talk("demo")',
    'nowhere = JoinInfo("ws://127.0.0.1:9", "token", "r", "nobody", "demo")\n'
    'VoiceClient(nowhere, model_label="local")',
    "token = (api.AccessToken(lab.api_key, lab._api_secret).with_identity('lonely')\n"
    "    .with_grants(api.VideoGrants(room_join=True, room='no-agent-here')).to_jwt())\n"
    "VoiceClient(JoinInfo(lab.url, token, 'no-agent-here', 'lonely', 'demo'),\n"
    "            model_label='local', agent_timeout_s=2)",
]


@pytest.fixture(scope="module")
def error_page(tmp_path_factory, driver):
    """Three clients on one page, none of which can go right: a browser that refuses the
    microphone, a server that is not there, a room no agent is sent to."""
    root = tmp_path_factory.mktemp("errors")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in ERROR_CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, root / "errors.ipynb")
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with jupyterlab(root, env) as url, chromium(driver, []) as page:
        open_notebook(page, url.format(path="errors.ipynb"))
        run_command(page, "notebook:run-all-cells")
        expect(page.locator(".rico-voice-client")).to_have_count(3, timeout=60_000)
        yield page


def test_denied_microphone_leaves_typing_working(error_page):
    talk = error_page.locator(".rico-voice-client").nth(0)
    expect(talk).to_have_attribute("data-status", "connected", timeout=60_000)
    expect(talk).to_have_attribute("data-mic", re.compile("denied|unavailable"), timeout=30_000)
    expect(talk.locator(".rico-error")).to_contain_text("you can still type")
    expect(talk.locator(".rico-line.rico-agent").first).to_contain_text(
        "Local model here", timeout=30_000
    )
    talk.locator(".rico-text-input").fill("typed without a mic")
    talk.locator(".rico-send").click()
    expect(
        talk.locator(".rico-line.rico-agent", has_text="you wrote: typed without a mic")
    ).to_be_visible(timeout=30_000)


def test_model_error_is_shown(error_page):
    talk = error_page.locator(".rico-voice-client").nth(0)
    expect(talk).to_have_attribute("data-agent-state", "listening", timeout=30_000)
    talk.locator(".rico-text-input").fill("/fail the model is down")
    talk.locator(".rico-text-input").press("Enter")
    expect(talk.locator(".rico-error")).to_contain_text("Model error:", timeout=30_000)
    expect(talk.locator(".rico-error")).to_contain_text("the model is down")
    # the next reply that comes through clears it
    expect(talk).to_have_attribute("data-agent-state", "listening", timeout=30_000)
    talk.locator(".rico-text-input").fill("and now?")
    talk.locator(".rico-text-input").press("Enter")
    expect(talk.locator(".rico-line.rico-agent", has_text="you wrote: and now?")).to_be_visible(
        timeout=30_000
    )
    expect(talk.locator(".rico-error")).to_have_text("")


def test_unreachable_server_is_named(error_page):
    dead = error_page.locator(".rico-voice-client").nth(1)
    expect(dead).to_have_attribute("data-status", "error", timeout=60_000)
    expect(dead.locator(".rico-error")).to_contain_text(
        "Cannot reach the LiveKit server at ws://127.0.0.1:9"
    )


def test_absent_agent_is_reported_after_the_timeout(error_page):
    lonely = error_page.locator(".rico-voice-client").nth(2)
    expect(lonely).to_have_attribute("data-status", "connected", timeout=60_000)
    expect(lonely.locator(".rico-error")).to_contain_text("did not join within 2 s", timeout=30_000)
