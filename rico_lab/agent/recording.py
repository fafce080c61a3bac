"""A conversation's audio, recorded by livekit-agents' own ``RecorderIO`` into the runs folder.

``RecorderIO`` (user left, agent right, one timeline) encodes every 2.5 s, but opens its
Ogg file with ffmpeg's defaults: the encoded pages wait in a 256 KB write buffer, about
20 s of conversation, so a kernel killed mid-conversation would lose them all. Its
encoder thread looks ``av.open`` up in its module when it starts; :data:`_FLUSHING_AV`,
put there once, is PyAV with ``flush_packets`` on, so each page reaches the file as it is
muxed. Nothing else changes: same encoder, same file, the plugin unmodified on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import av
from livekit.agents import AgentSession
from livekit.agents.voice.recorder_io import RecorderIO
from livekit.agents.voice.recorder_io import recorder_io as _recorder_module

Write = Callable[..., None]


class _FlushingAv(ModuleType):
    """PyAV as ``RecorderIO`` uses it, except that a file opened to write flushes each page."""

    def __init__(self) -> None:
        super().__init__("av")

    def __getattr__(self, name: str) -> Any:
        return getattr(av, name)

    @staticmethod
    def open(file: Any, mode: str = "r", **kwargs: Any) -> Any:
        if mode == "w":
            kwargs["container_options"] = {"flush_packets": "1"} | kwargs.get(
                "container_options", {}
            )
        return av.open(file, mode, **kwargs)


_FLUSHING_AV = _FlushingAv()
_recorder_module.av = _FLUSHING_AV


class Recording:
    """Both sides of one session, written into ``path`` as the conversation goes.

    The record says so twice: ``recording_started`` as the first sample is taken (from
    then on the file holds all but the last seconds, whatever happens to the kernel), and
    ``recording`` once the file is closed and whole.
    """

    def __init__(self, recorder: RecorderIO, write: Write) -> None:
        self._recorder = recorder
        self._write = write

    @classmethod
    async def start(cls, session: AgentSession[Any], path: Path, write: Write) -> Recording:
        """Wire a recorder between ``session`` and its room, and start writing ``path``."""
        recorder = RecorderIO(agent_session=session)
        assert session.input.audio is not None and session.output.audio is not None
        session.input.audio = recorder.record_input(session.input.audio)
        session.output.audio = recorder.record_output(session.output.audio)
        await recorder.start(output_path=path)
        write("recording_started", file=path.name, started=recorder.recording_started_at)
        return cls(recorder, write)

    async def close(self) -> None:
        """Close the file, then record it: from then on it is whole, and can be replayed."""
        started = self._recorder.recording_started_at
        await self._recorder.aclose()
        path = self._recorder.output_path
        if path is not None and started is not None:
            duration = time.time() - started
            self._write("recording", file=path.name, started=started, duration_s=duration)
