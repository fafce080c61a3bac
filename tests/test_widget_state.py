"""The voice client's state is one contract written three times; these hold them together.

The browser's interface (``widgets/src/state.ts``), the notebook widget's synced traitlets
(``VoiceClient``) and the web page's state from ``/join`` (``web_client.join_state``) must
name the same keys: a key missing from one side is a value the page never sees, or never
reports back. And ``lab.talk(**options)`` reaches ``VoiceClient``, which takes only what a
user may set.
"""

import re
from pathlib import Path

import anywidget
import pytest

from rico_lab.notebook.voice_client import VoiceClient
from rico_lab.protocol import JoinInfo
from rico_lab.web_client import join_state

pytestmark = pytest.mark.unit

STATE_TS = Path(__file__).resolve().parent.parent / "widgets" / "src" / "state.ts"


def state_ts_keys() -> set[str]:
    """The keys of ``interface VoiceClientState`` in state.ts (one per line, comments aside)."""
    body = re.search(r"export interface VoiceClientState \{\n(.*?)\n\}", STATE_TS.read_text(), re.S)
    assert body, f"no `export interface VoiceClientState {{...}}` in {STATE_TS}"
    return set(re.findall(r"^\s*(\w+)\??:", body.group(1), re.M))


def traitlet_keys() -> set[str]:
    """VoiceClient's synced traitlets, without those every anywidget has (_model_*, layout...)."""
    own = VoiceClient.class_traits(sync=True).keys() - anywidget.AnyWidget.class_traits(sync=True)
    return set(own)


def page_keys() -> set[str]:
    return set(join_state("ws://lk", "token", "room", "guest", "demo"))


def test_state_ts_traitlets_and_the_page_state_have_the_same_keys():
    ts, traits, page = state_ts_keys(), traitlet_keys(), page_keys()
    assert ts, "state.ts declares no keys"
    assert ts == traits, f"state.ts only: {ts - traits}; VoiceClient only: {traits - ts}"
    assert page == traits, f"/join only: {page - traits}; VoiceClient only: {traits - page}"


def test_the_page_state_starts_where_the_traitlets_do():
    """What the page starts with is what a new notebook widget starts with."""
    given = {"url", "token", "room", "identity", "role"}  # the join's own
    defaults = {
        name: trait.default() for name, trait in VoiceClient.class_traits(sync=True).items()
    }
    page = join_state("ws://lk", "token", "room", "guest", "demo")
    assert {key: page[key] for key in page.keys() - given} == {
        key: defaults[key] for key in page.keys() - given
    }


INFO = JoinInfo("ws://127.0.0.1:7880", "token", "demo-1", "guest", "demo")


def test_voice_client_takes_the_user_options():
    client = VoiceClient(INFO, model_label="local", auto_connect=False, agent_timeout_s=2.0)
    assert (client.auto_connect, client.agent_timeout_s, client.room) == (False, 2.0, "demo-1")


@pytest.mark.parametrize("option", ["autoconnect", "url", "status"])
def test_an_unknown_option_raises_naming_it_and_the_valid_ones(option: str):
    with pytest.raises(TypeError, match=rf"'{option}'.*auto_connect, agent_timeout_s"):
        VoiceClient(INFO, model_label="local", **{option: "x"})
