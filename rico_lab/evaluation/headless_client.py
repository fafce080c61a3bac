"""The voice client's UI methods without a browser: what a rehearsal's user has on screen.

A rehearsal's participant serves every client method (``show_markdown``, ``show_table``,
``show_image``, ``ask``, ``save_note``, ``end_session``) with the voice client's own rules,
read from ``client_methods.json``: the same refusals, answers and text on screen. It reports
each panel to the agent on the ``rico_lab.ui`` topic, as the page does, so the record has
the same ``ui`` events for rehearsed and live conversations. An ``ask`` is answered with
the script's answer for the turn, or never, as a user who does not click.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

from livekit import rtc

from ..client_methods import CLIENT_METHODS, Call, CallRefused, check_call, message
from ..protocol import UI_TOPIC
from .participant import Participant

logger = logging.getLogger(__name__)

#: What a script's ``answer`` may be: a choice (or its index), form values, or None (never).
Answer = str | int | dict[str, Any] | None


class AnswerRefused(ValueError):
    """The script's answer does not fit the question the agent asked."""


@dataclass
class _Question:
    """The ask on screen, waiting for the scripted user."""

    call: Call
    agent: str
    answered: asyncio.Future[str]
    #: why it went unanswered, once it has (a newer question, or the user left)
    why: str = ""


class HeadlessClient:
    """Serves the client methods on ``participant``'s room, answering asks as scripted.

    Methods run on the participant's loop; :meth:`will_answer` is called from the
    rehearsal's thread before each turn.
    """

    def __init__(self, participant: Participant) -> None:
        self._participant = participant
        self._answer: Answer = None
        self._answering = False
        self._question: _Question | None = None
        #: the asks of the current turn
        self.asked: list[Call] = []
        #: answers that did not fit their question, as messages naming the problem
        self.refused_answers: list[str] = []
        for method in CLIENT_METHODS:
            participant.room.local_participant.register_rpc_method(method, self._handler(method))

    def will_answer(self, answer: Answer, *, given: bool) -> None:
        """How the user answers the asks of the coming turn; ``given=False``: never."""
        self._answer, self._answering = answer, given and answer is not None
        self.asked.clear()
        self.refused_answers.clear()

    def leave(self) -> None:
        """The user leaves: a question still on show is reported unanswered, as the page does."""
        if self._question is not None and self._participant.room.isconnected():
            self._participant.run(self._unanswered(message("left")), 10)

    async def _unanswered(self, why: str) -> None:
        """The question on show goes unanswered: its call fails, the agent hears why."""
        question, self._question = self._question, None
        if question is not None and not question.answered.done():
            question.why = why
            question.answered.cancel()
            await self._report(question.agent, question.call, None, why)

    def _handler(self, method: str) -> Any:
        async def handle(data: rtc.RpcInvocationData) -> str:
            caller = self._participant.room.remote_participants.get(data.caller_identity)
            if caller is None or caller.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                raise rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, message("only_agent"))
            try:
                call = check_call(method, data.payload)
            except CallRefused as exc:
                raise rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, str(exc)) from None
            if method != "ask":
                await self._report(data.caller_identity, call, call.answer, None)
                return str(call.answer)
            return await self._ask(data.caller_identity, call)

        return handle

    async def _ask(self, agent: str, call: Call) -> str:
        await self._unanswered(message("replaced"))  # a newer question replaces the one on show
        question = _Question(call, agent, asyncio.get_running_loop().create_future())
        self._question = question
        self.asked.append(call)
        if self._answering:
            try:
                question.answered.set_result(self._fit(call, self._answer))
            except AnswerRefused as exc:
                self.refused_answers.append(str(exc))
        try:
            answer = await question.answered
        except asyncio.CancelledError:
            if not question.why:  # the room closed under it
                raise
            raise rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, question.why) from None
        if self._question is question:
            self._question = None
        await self._report(agent, call, answer, None)
        return answer

    @staticmethod
    def _fit(call: Call, answer: Answer) -> str:
        """The answer as the voice client would send it, or why it cannot be given."""
        choices = call.arguments.get("choices")
        if choices is not None:
            if isinstance(answer, bool) or not isinstance(answer, str | int):
                raise AnswerRefused(f"the agent offered choices {choices}: answer one of them")
            if isinstance(answer, int):
                if not 0 <= answer < len(choices):
                    raise AnswerRefused(f"choice {answer} is not an index of {choices}")
                return choices[answer]
            if answer not in choices:
                raise AnswerRefused(f"{answer!r} is not one of the choices {choices}")
            return answer
        fields = {field["name"]: field for field in call.arguments["fields"]}
        if not isinstance(answer, dict):
            raise AnswerRefused(
                f"the agent asked for a form ({', '.join(fields)}): answer a mapping"
            )
        unknown = [name for name in answer if name not in fields]
        if unknown:
            raise AnswerRefused(
                f"the form has no field {unknown[0]!r} (fields: {', '.join(fields)})"
            )
        values: dict[str, Any] = {}
        for name, field in fields.items():  # as the page submits it: every field, in order
            value = answer.get(name)
            if field["type"] == "number":  # the page sends null for what is no number
                number = isinstance(value, int | float) and not isinstance(value, bool)
                values[name] = value if number and math.isfinite(value) else None
            else:
                values[name] = "" if value is None else str(value)
        return json.dumps(values, separators=(",", ":"), ensure_ascii=False)

    async def _report(self, agent: str, call: Call, answer: str | None, error: str | None) -> None:
        """Tell the agent what the user saw, as the page does (a lost report is only logged)."""
        shown = call.shown
        report = asdict(shown) | {"answer": answer, "error": error}
        try:
            await self._participant.room.local_participant.publish_data(
                json.dumps(report), reliable=True, destination_identities=[agent], topic=UI_TOPIC
            )
        except Exception:
            logger.warning("could not report %s to %s", shown.method, agent, exc_info=True)
