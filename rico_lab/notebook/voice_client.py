"""The voice client widget: an anywidget that joins a lab conversation from the notebook page.

Audio, transcript and text travel browser ↔ LiveKit over WebRTC, never through the kernel's
comm channel, so they keep flowing while a cell runs. The widget state mirrors
``widgets/src/state.ts`` key for key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

from ..protocol import JoinInfo
from .bundle import bundle

BUNDLE = bundle()  # fails early, saying how to build it


class VoiceClient(anywidget.AnyWidget):
    """Mic, agent audio, agent state, live transcript and a text box for one conversation.

    Made by :meth:`rico_lab.Lab.talk`; it carries the room-scoped token of one join, never
    the LiveKit API secret.
    """

    _esm = BUNDLE

    # Python -> browser
    url = traitlets.Unicode("").tag(sync=True)
    token = traitlets.Unicode("").tag(sync=True)
    room = traitlets.Unicode("").tag(sync=True)
    identity = traitlets.Unicode("").tag(sync=True)
    role = traitlets.Unicode("").tag(sync=True)
    model_label = traitlets.Unicode("").tag(sync=True)
    auto_connect = traitlets.Bool(True).tag(sync=True)
    agent_timeout_s = traitlets.Float(15.0).tag(sync=True)

    # browser -> Python (read-only here: the page owns them)
    status = traitlets.Unicode("idle").tag(sync=True)
    agent_state = traitlets.Unicode("").tag(sync=True)
    mic = traitlets.Unicode("off").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    transcript = traitlets.List(traitlets.Dict()).tag(sync=True)
    role_version = traitlets.Unicode("").tag(sync=True)

    #: Set by the lab: moves the conversation to another role when ``role`` is assigned.
    switch_role: Callable[[str], None] | None = None

    #: What a user may set (``lab.talk(role, **options)``); the rest is the join's or the page's.
    OPTIONS = ("auto_connect", "agent_timeout_s")

    def __init__(self, info: JoinInfo, *, model_label: str, **options: Any) -> None:
        """A misspelt option raises, rather than pass to ipywidgets unnoticed."""
        unknown = [name for name in options if name not in self.OPTIONS]
        if unknown:
            raise TypeError(
                f"unknown VoiceClient option {', '.join(map(repr, unknown))}: "
                f"the options are {', '.join(self.OPTIONS)}"
            )
        super().__init__(
            url=info.url,
            token=info.token,
            room=info.room,
            identity=info.identity,
            role=info.role,
            model_label=model_label,
            **options,
        )

    @traitlets.validate("role")
    def _validate_role(self, proposal: dict[str, Any]) -> str:
        """``client.role = "other"`` switches the live conversation.

        A bad role raises, and the conversation (and this trait) keep the current one.
        """
        if self.switch_role is not None:
            self.switch_role(proposal["value"])
        return str(proposal["value"])

    def connect(self) -> None:
        """Connect (the page does it on render unless ``auto_connect=False``)."""
        self.send({"type": "connect"})

    def disconnect(self) -> None:
        """Leave the room; the agent's session for it ends."""
        self.send({"type": "disconnect"})

    def say(self, text: str) -> None:
        """Send ``text`` to the agent as a typed user turn, as the text box does."""
        self.send({"type": "send_text", "text": text})

    def __repr__(self) -> str:
        return f"<rico_lab.VoiceClient room={self.room} role={self.role} status={self.status}>"
