"""How long audio waits on its way from the user to the model and back: frames and pacing.

Every stage hands audio on in frames, and the audio that ends the user's turn waits, on
average, half a frame at each stage before the next one sees it. livekit-agents' room
input cuts the user's track into 50 ms frames, and the OpenAI plugin sends them to the
model's websocket in 100 ms chunks (a constant in its session, with no option); the
model's VAD finds the end of the turn only in audio it has been sent. ``AudioPath`` makes
both small. OpenAI takes appends of any length (only a commit needs 100 ms in the
buffer), and the local model's VAD reads 10 ms frames out of whatever arrives. On the way
back, ``output_lead_ms`` sends the start of each reply at once instead of on the native
source's 10 ms ticks (see :mod:`.audio_output`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import utils
from livekit.agents.voice.room_io import AudioInputOptions, RoomOptions
from livekit.plugins import openai
from livekit.plugins.openai.realtime.realtime_model import NUM_CHANNELS, SAMPLE_RATE

from .audio_output import LeadingAudioOutput


@dataclass(frozen=True)
class AudioPath:
    """Frame sizes of the user's audio on its way to the model, and the reply's lead, in ms."""

    #: the room input's frames (livekit-agents' ``AudioInputOptions.frame_size_ms``: 50)
    input_frame_ms: int = 10
    #: the plugin's chunks to the model's websocket (its fixed 100)
    send_chunk_ms: int = 20
    #: how far ahead of real time the agent's audio is sent; 0: livekit-agents' own
    #: output, whose source sends 10 ms every 10 ms from the reply's first tick on
    output_lead_ms: int = 20

    def room_options(self) -> RoomOptions:
        """The session's room options: these input frames, livekit's output if no lead."""
        return RoomOptions(
            audio_input=AudioInputOptions(frame_size_ms=self.input_frame_ms),
            audio_output=not self.output_lead_ms,
        )

    def audio_output(self, room: rtc.Room) -> LeadingAudioOutput | None:
        """The agent's audio output to ``room`` with this lead; None for livekit-agents'."""
        if not self.output_lead_ms:
            return None
        return LeadingAudioOutput(room, lead_ms=self.output_lead_ms)


#: what a lab and a worker use unless told otherwise
DEFAULT_AUDIO_PATH = AudioPath()


class RealtimeModel(openai.realtime.RealtimeModel):
    """The plugin's ``RealtimeModel``, sending the user's audio in ``send_chunk_ms`` chunks.

    Each session's byte stream is replaced as the session is made, before any audio is
    pushed: the one attribute that holds the constant. Everything else is the plugin's.
    """

    def __init__(self, *, send_chunk_ms: int = 100, **options: Any) -> None:
        super().__init__(**options)
        self._send_samples = SAMPLE_RATE * send_chunk_ms // 1000

    def session(self, *, turn_detection_disabled: bool = False) -> Any:
        """The plugin's session, its audio sent in this model's chunks."""
        session = super().session(turn_detection_disabled=turn_detection_disabled)
        session._bstream = utils.audio.AudioByteStream(
            SAMPLE_RATE, NUM_CHANNELS, samples_per_channel=self._send_samples
        )
        return session
