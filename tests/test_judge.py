"""Judging replies: the OpenAI judge against a local stand-in of its endpoint, and the rule."""

import json
from collections.abc import Iterator

import pytest
from aiohttp import web

from rico_lab._loop_thread import LoopThread
from rico_lab.errors import LabError
from rico_lab.evaluation.judge import LocalRule, OpenAIJudge, Verdict
from rico_lab.livekit_server import free_port

KEY = "sk-test-judge"

#: The shape of a Chat Completions answer as OpenAI sends it (JSON mode), its content ours.
COMPLETION = {
    "id": "chatcmpl-AbC123",
    "object": "chat.completion",
    "created": 1764680000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 112, "completion_tokens": 19, "total_tokens": 131},
    "system_fingerprint": "fp_0123456789",
}


class StandIn:
    """A loopback /v1/chat/completions: records each request, answers what it is given."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict]] = []
        self.content: object = json.dumps({"passed": True, "reason": "It asks how many."})
        self.status = 200

    async def completions(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        if self.status != 200:
            error = {
                "message": "Incorrect API key provided: sk-test-***dge.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return web.json_response({"error": error}, status=self.status)
        answer = json.loads(json.dumps(COMPLETION))
        answer["choices"][0]["message"]["content"] = self.content
        return web.json_response(answer)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[StandIn, str]]:
    stand_in, loop, port = StandIn(), LoopThread("judge-endpoint"), free_port()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", stand_in.completions)
    runner = web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    loop.run(start(), 10)
    yield stand_in, f"http://127.0.0.1:{port}/v1"
    loop.run(runner.cleanup(), 10)
    loop.stop()


@pytest.mark.integration  # the stand-in listens on loopback
def test_the_openai_judge_asks_once_and_reads_the_verdict(endpoint):
    stand_in, url = endpoint
    judge = OpenAIJudge(KEY, url)
    calls = [{"tool": "ask_quantity", "arguments": {"question": "How many?"}}]
    verdict = judge("asks how many the user wants", "How many would you like?", calls)
    assert (verdict.passed, verdict.reason, verdict.judge) == (
        True,
        "It asks how many.",
        "gpt-4o-mini",
    )
    headers, body = stand_in.requests[-1]
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body["model"] == "gpt-4o-mini" and body["response_format"] == {"type": "json_object"}
    asked = body["messages"][-1]["content"]
    assert "Criterion: asks how many the user wants" in asked
    assert (
        "How many would you like?" in asked and 'ask_quantity({"question": "How many?"})' in asked
    )


@pytest.mark.integration
def test_the_openai_judge_says_what_went_wrong(endpoint):
    stand_in, url = endpoint
    judge = OpenAIJudge(KEY, url)
    stand_in.content = json.dumps({"passed": False, "reason": "It never asks.\nMore."})
    assert judge("asks", "Hello.", []) == Verdict(False, "It never asks.", "gpt-4o-mini")
    for content, problem in [
        ("not json", "an answer out of form"),
        (json.dumps({"reason": "no verdict"}), "an answer out of form"),
        (json.dumps({"passed": "yes"}), "'passed' is not true or false"),
    ]:
        stand_in.content = content
        with pytest.raises(LabError, match=problem):
            judge("asks", "Hello.", [])
    stand_in.status = 401
    with pytest.raises(LabError, match="judge gpt-4o-mini: HTTP 401: Incorrect API key"):
        judge("asks", "Hello.", [])
    stand_in.status = 200
    with pytest.raises(LabError, match=r"could not ask http://127\.0\.0\.1:1/v1"):
        OpenAIJudge(KEY, "http://127.0.0.1:1/v1", timeout=2)("asks", "Hello.", [])


@pytest.mark.unit
def test_the_local_rule_looks_for_the_criterions_key_words():
    rule = LocalRule()
    calls = [{"tool": "add_item", "arguments": {"item": "lemonade", "quantity": 2}}]
    passed = rule("mentions the lemonade and the quantity", "Two lemonades, coming up.", calls)
    assert passed.passed and passed.judge == "local rule (no model)"
    failed = rule("mentions the apple cake", "Two lemonades, coming up.", calls)
    assert not failed.passed and failed.reason == "not in the reply or its tool calls: apple, cake"
    assert not rule("asks", "anything", []).passed  # no key word: never a silent pass
    assert rule("mentions the lemonade", "Lemonade!", []) == rule(
        "mentions the lemonade", "Lemonade!", []
    )
