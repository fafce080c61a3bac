"""Judging a reply against a criterion: by a model with OpenAI, by a stated rule without.

A substring check on free speech breaks as soon as the model words it differently, so a
rehearsal's ``judge:`` expectation asks whether the reply (what was said, and the tools it
called) meets a criterion in words. With ``OPENAI_API_KEY`` a text model decides, through
the Chat Completions endpoint and the same key; without it, :class:`LocalRule` stands in:
deterministic, documented, and named as such in the results, so a local rehearsal never
passes a judgement silently.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import LabError

#: Words too common to say what a criterion is about.
_STOP_WORDS = frozenset(
    "about after again also asks back does each from have into just like make more most "
    "must only over said says should some such than that them then there these they this "
    "very what when which while will with would your user users reply agent mention "
    "mentions tell tells name names".split()
)


@dataclass(frozen=True)
class Verdict:
    """A judgement: whether the reply meets the criterion, why (one line), and who said so."""

    passed: bool
    reason: str
    judge: str


class Judge(Protocol):
    """Decides whether a reply meets a criterion."""

    #: who judges: a model's name, or the local rule's
    name: str

    def __call__(self, criterion: str, reply: str, tools: list[dict[str, Any]]) -> Verdict:
        """Judge ``reply`` (and the ``tools`` calls it made) against ``criterion``."""


class LocalRule:
    """The stand-in judge of the local model: every key word of the criterion is there.

    Key words are the criterion's words of four letters or more, less a short list of common
    ones (``asks``, ``user``, ``should``...); each must appear in the reply or in the called
    tools' names and arguments (case-insensitive, a word's start: "croissant" matches
    "croissants"). Deterministic, so a local rehearsal gives the same verdicts every run.
    """

    name = "local rule (no model)"

    def __call__(self, criterion: str, reply: str, tools: list[dict[str, Any]]) -> Verdict:
        """Pass when every key word of ``criterion`` is in the reply or its tool calls."""
        called = [f"{t.get('tool')} {json.dumps(t.get('arguments'))}" for t in tools]
        said = " ".join([reply, *called]).lower()
        words = [w for w in re.findall(r"[a-z]{4,}", criterion.lower()) if w not in _STOP_WORDS]
        missing = [w for w in dict.fromkeys(words) if not re.search(rf"\b{w}", said)]
        if not words:
            return Verdict(False, "the criterion has no key word the rule can look for", self.name)
        if missing:
            return Verdict(
                False, f"not in the reply or its tool calls: {', '.join(missing)}", self.name
            )
        return Verdict(True, f"the reply has {', '.join(dict.fromkeys(words))}", self.name)


_INSTRUCTIONS = (
    "You judge one reply of a voice agent against a criterion. The reply is what the agent "
    "said, then the tools it called with their arguments. Answer with JSON only: "
    '{"passed": true or false, "reason": "one short sentence"}.'
)


class OpenAIJudge:
    """A text model judging through OpenAI's Chat Completions endpoint.

    Args:
        api_key: The key the lab's model uses.
        base_url: The API's base URL (``OPENAI_BASE_URL``'s, or OpenAI's).
        model: The judging model; its name is recorded with each verdict.
        timeout: Seconds one judgement may take.
    """

    def __init__(
        self, api_key: str, base_url: str, model: str = "gpt-4o-mini", timeout: float = 30.0
    ) -> None:
        self.name, self._key, self._url, self._timeout = model, api_key, base_url, timeout

    def __call__(self, criterion: str, reply: str, tools: list[dict[str, Any]]) -> Verdict:
        """Ask the model; :class:`LabError` if it cannot be asked or answers out of form."""
        calls = "\n".join(f"- {t.get('tool')}({json.dumps(t.get('arguments'))})" for t in tools)
        body = {
            "model": self.name,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": _INSTRUCTIONS},
                {
                    "role": "user",
                    "content": f"Criterion: {criterion}\n\nThe agent said: {reply}\n\n"
                    f"Tools called:\n{calls or '(none)'}",
                },
            ],
        }
        request = urllib.request.Request(
            f"{self._url.rstrip('/')}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise LabError(f"judge {self.name}: HTTP {exc.code}: {_detail(exc)}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise LabError(f"judge {self.name}: could not ask {self._url}: {exc}") from None
        try:
            verdict = json.loads(answer["choices"][0]["message"]["content"])
            passed, reason = verdict["passed"], str(verdict.get("reason", "")).strip()
        except (KeyError, IndexError, TypeError, ValueError):
            raise LabError(f"judge {self.name}: an answer out of form: {answer!r:.300}") from None
        if not isinstance(passed, bool):
            raise LabError(f"judge {self.name}: 'passed' is not true or false: {passed!r}")
        return Verdict(passed, reason.splitlines()[0] if reason else "", self.name)


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(error.reason)
