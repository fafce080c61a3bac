// The listener-latency state machine (latency.ts): which agent sound is a reply, and when.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ReplyTimer } from "../src/latency";

/** Latencies are differences of audio-clock times: equal up to rounding. */
function near(actual: number | undefined, expected: number): void {
  const close = actual !== undefined && Math.abs(actual - expected) < 1e-9;
  assert.ok(close, `${actual} ≠ ${expected}`);
}

test("nothing is armed before the user's first turn: the greeting is not a reply", () => {
  const timer = new ReplyTimer();
  assert.equal(timer.level({ type: "agent", t: 1, quietSince: -Infinity }), null);
});

test("a spoken turn: from its end to the agent's first sound", () => {
  const timer = new ReplyTimer();
  assert.equal(timer.level({ type: "speech", t: 2 }), null);
  assert.equal(timer.level({ type: "quiet", t: 3 }), null);
  const heard = timer.level({ type: "agent", t: 3.8, quietSince: 1 });
  assert.equal(heard?.after, "speech");
  near(heard?.latencyS, 0.8);
  assert.equal(heard?.end, 3); // when the turn ended, for the page to put on its own clock
  // reported once: the rest of the reply is not another one
  assert.equal(timer.level({ type: "agent", t: 5, quietSince: 4.9 }), null);
});

test("agent sound while the user speaks, or before the turn's end, is not a reply", () => {
  const timer = new ReplyTimer();
  timer.level({ type: "quiet", t: 3 });
  assert.equal(timer.level({ type: "agent", t: 3, quietSince: 1 }), null);
  timer.level({ type: "speech", t: 4 }); // the user goes on: the end still to come counts
  assert.equal(timer.level({ type: "agent", t: 4.5, quietSince: 1 }), null);
  timer.level({ type: "quiet", t: 6 });
  near(timer.level({ type: "agent", t: 6.5, quietSince: 1 })?.latencyS, 0.5);
});

test("a typed turn ends when it is sent", () => {
  const timer = new ReplyTimer();
  timer.typed(10);
  const heard = timer.level({ type: "agent", t: 10.25, quietSince: 2 });
  assert.equal(heard?.after, "text");
  near(heard?.latencyS, 0.25);
});

test("without agent state, an agent still talking replies after a pause between words", () => {
  const timer = new ReplyTimer();
  timer.typed(10);
  // quiet since 9.95 (before the end): only a pause of REPLY_GAP_S (0.2 s) makes a reply
  assert.equal(timer.level({ type: "agent", t: 10.1, quietSince: 10.05 }), null);
  near(timer.level({ type: "agent", t: 10.5, quietSince: 10.25 })?.latencyS, 0.5);
});

test("with agent state, the reply is the first sound once it says it speaks", () => {
  const timer = new ReplyTimer();
  timer.agentSpeaking(1); // the greeting: the agent reports its state
  timer.typed(10);
  // the old reply goes on after the user's turn: not the answer, however long the pause
  assert.equal(timer.level({ type: "agent", t: 11, quietSince: 10.2 }), null);
  timer.agentSpeaking(11.5);
  assert.equal(timer.level({ type: "agent", t: 11.4, quietSince: 11.2 }), null);
  near(timer.level({ type: "agent", t: 11.7, quietSince: 11.5 })?.latencyS, 1.7);
});

test("a stopped audio clock marks no reply start", () => {
  const timer = new ReplyTimer();
  timer.typed(10);
  timer.agentSpeaking(null);
  assert.equal(timer.level({ type: "agent", t: 11, quietSince: 9 }), null);
});

test("reset forgets the pending turn and that the agent reports its state", () => {
  const timer = new ReplyTimer();
  timer.agentSpeaking(1);
  timer.typed(10);
  timer.reset();
  assert.equal(timer.level({ type: "agent", t: 11, quietSince: 9 }), null);
  timer.typed(20); // stateless again: the first sound after a quiet end is the reply
  near(timer.level({ type: "agent", t: 20.3, quietSince: 19 })?.latencyS, 0.3);
});

test("a new microphone is not speaking: agent sound after a turn's end counts", () => {
  const timer = new ReplyTimer();
  timer.typed(10);
  timer.level({ type: "speech", t: 10.1 }); // the user started to speak...
  timer.newMic(); // ...into a microphone that went away
  timer.typed(12);
  near(timer.level({ type: "agent", t: 12.4, quietSince: 11 })?.latencyS, 0.4);
});
