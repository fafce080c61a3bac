"""Which realtime model a role talks to: OpenAI when ``OPENAI_API_KEY`` is set, else the local one.

A lab and a standalone worker choose the same way, so a role behaves alike in both.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import llm

from .._loop_thread import LoopThread
from ..errors import ModelError
from ..evaluation.judge import Judge, LocalRule, OpenAIJudge
from ..local_model.script import LocalScript
from ..local_model.server import LocalRealtimeServer
from ..roles import Role
from .audio_path import RealtimeModel

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass
class ModelChoice:
    """How conversations get their model.

    Attributes:
        label: ``"openai"`` or ``"local"``, what the voice client shows.
        make: A RealtimeModel for a role, with keyword overrides of the role's settings.
        judge: Who judges a rehearsal's ``judge:`` expectations: a text model through the
            same key with OpenAI, the documented local rule without.
        local: The local realtime server when it answers (None for OpenAI); it runs on the
            loop it was started on until :meth:`close`.
    """

    label: str
    make: Callable[..., llm.RealtimeModel]
    judge: Judge
    local: LocalRealtimeServer | None = None

    def close(self, loop: LoopThread) -> None:
        """Stop the local realtime server, if one answers."""
        if self.local is not None and loop.alive:
            loop.run(self.local.aclose(), 10)


def start_models(loop: LoopThread, script: LocalScript | None, timeout: float) -> ModelChoice:
    """OpenAI (its key checked now, not mid-conversation) or a local realtime server on ``loop``.

    Raises:
        ModelError: OPENAI_API_KEY is set but rejected, or OpenAI is unreachable.
    """
    openai_key = os.environ.get("OPENAI_API_KEY")
    if openai_key:
        base_url = os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
        check_openai_key(base_url, openai_key)

        def make_openai(role: Role, **overrides: Any) -> llm.RealtimeModel:
            return RealtimeModel(**(role.realtime_options() | overrides))

        return ModelChoice("openai", make_openai, OpenAIJudge(openai_key, base_url))

    local_key = "rico-local-" + secrets.token_urlsafe(16)
    server = LocalRealtimeServer(api_key=local_key, script=script)
    loop.run(server.start(), timeout)
    url = server.base_url

    def make_local(role: Role, **overrides: Any) -> llm.RealtimeModel:
        return RealtimeModel(
            base_url=url, api_key=local_key, **(role.realtime_options() | overrides)
        )

    return ModelChoice("local", make_local, LocalRule(), server)


def check_openai_key(base_url: str, key: str) -> None:
    """Ask the models endpoint once, so a bad OPENAI_API_KEY fails here, not mid-conversation."""
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/models", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = exc.reason
        raise ModelError(
            f"OPENAI_API_KEY was rejected by {base_url} (HTTP {exc.code}): {detail}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(
            f"could not reach the OpenAI API at {base_url} to check OPENAI_API_KEY: {exc}; "
            "unset OPENAI_API_KEY to use rico_lab's local realtime model"
        ) from None
