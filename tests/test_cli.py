"""The rico-lab command, as a user runs it from a shell."""

import json
import os
import subprocess

import pytest
from cli_process import RICO_LAB
from livekit import api

from rico_lab.cli import main

pytestmark = pytest.mark.unit  # `rico-lab token` runs to completion, offline: a command, no server

ENV = {
    "LIVEKIT_URL": "wss://example.livekit.cloud",
    "LIVEKIT_API_KEY": "APIkey123",
    "LIVEKIT_API_SECRET": "s" * 40,
}


def test_token_joins_one_room_and_brings_the_agent_with_the_role():
    done = subprocess.run(
        [RICO_LAB, "token", "--role", "food_order", "--room", "r1", "--identity", "ann", "--json"],
        env=os.environ | ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    printed = json.loads(done.stdout)
    assert {k: printed[k] for k in ("url", "room", "identity", "role")} == {
        "url": ENV["LIVEKIT_URL"],
        "room": "r1",
        "identity": "ann",
        "role": "food_order",
    }
    claims = api.TokenVerifier(ENV["LIVEKIT_API_KEY"], ENV["LIVEKIT_API_SECRET"]).verify(
        printed["token"]
    )
    assert claims.identity == "ann"
    assert claims.video.room == "r1" and claims.video.room_join
    (dispatch,) = claims.room_config.agents
    assert dispatch.agent_name == "rico_lab"
    assert json.loads(dispatch.metadata) == {"role": "food_order"}


def test_token_names_the_workers_agent(monkeypatch, capsys):
    """A worker started with --agent-name is reached by tokens that ask for that name."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    verify = api.TokenVerifier(ENV["LIVEKIT_API_KEY"], ENV["LIVEKIT_API_SECRET"]).verify
    assert main(["token", "--role", "listener", "--agent-name", "support"]) == 0
    (dispatch,) = verify(capsys.readouterr().out.strip()).room_config.agents
    assert dispatch.agent_name == "support"
    assert json.loads(dispatch.metadata) == {"role": "listener"}
    # a worker that takes every room needs no dispatch: the role rides on the user
    assert main(["token", "--role", "listener", "--agent-name", ""]) == 0
    claims = verify(capsys.readouterr().out.strip())
    assert claims.room_config is None or not claims.room_config.agents
    assert claims.attributes == {"rico_lab.role": "listener"}


def test_token_mistakes_are_named(monkeypatch, capsys):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LIVEKIT_API_SECRET")
    assert main(["token"]) == 2
    assert "set LIVEKIT_API_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("LIVEKIT_API_SECRET", ENV["LIVEKIT_API_SECRET"])
    assert main(["token", "--role", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["token", "--ttl-minutes", "0"]) == 2
    assert "--ttl-minutes must be positive" in capsys.readouterr().err
    for threshold in ("0", "1.5", "nan", "-inf"):
        assert main(["worker", f"--load-threshold={threshold}"]) == 2
        assert "--load-threshold must be in (0, 1] or inf" in capsys.readouterr().err
    assert main(["token"]) == 0  # a new room and user each time, the demo role
    assert capsys.readouterr().out.count(".") == 2  # a JWT
