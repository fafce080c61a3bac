// The player's pure parts (player.ts): where spans sit, how waveforms scale, which turn
// holds a time, what a span's tooltip says.

import assert from "node:assert/strict";
import { test } from "node:test";

import { bars, clock, spans, tooltip, turnAt, type Turn } from "../src/player";

const turn = (speaker: Turn["speaker"], start_s: number, end_s: number, extra = {}): Turn => ({
  speaker,
  text: `${speaker} at ${start_s}`,
  start_s,
  end_s,
  interrupted: false,
  tools: [],
  ...extra,
});

test("spans sit at their share of the recording", () => {
  assert.deepEqual(spans([turn("user", 1, 2), turn("agent", 2.5, 4)], 10), [
    { left: 10, width: 10 },
    { left: 25, width: 15 },
  ]);
});

test("a span is clamped to the recording and never thinner than a click", () => {
  const [before, after, instant] = spans(
    [turn("user", -1, 3), turn("agent", 8, 12), turn("user", 5, 5)],
    10,
  );
  assert.deepEqual(before, { left: 0, width: 30 });
  assert.deepEqual(after, { left: 80, width: 20 });
  assert.deepEqual(instant, { left: 50, width: 0.5 });
  assert.deepEqual(spans([turn("agent", 10, 10)], 10), [{ left: 99.5, width: 0.5 }]);
});

test("waveform bars take each column's loudest block, over the loudest of both channels", () => {
  const user = [0.1, 0.2, 0.05, 0.05];
  const agent = [0.0, 0.0, 0.4, 0.8];
  assert.deepEqual(bars([user, agent], 2), [
    [0.25, 0.0625],
    [0, 1],
  ]);
});

test("more columns than blocks stretch each block over its columns", () => {
  assert.deepEqual(bars([[0.5, 1]], 4), [[0.5, 0.5, 1, 1]]);
});

test("a silent recording stays flat", () => {
  const [quiet] = bars([[0.001, 0.002]], 2);
  assert.ok(quiet.every((h) => h <= 0.2), String(quiet));
});

test("the turn that holds a time is the latest to start before it, until it ends", () => {
  const turns = [turn("agent", 0, 4), turn("user", 3, 5), turn("agent", 6, 8)];
  assert.equal(turnAt(turns, 1), 0);
  assert.equal(turnAt(turns, 3.5), 1); // the user cut in
  assert.equal(turnAt(turns, 4.5), 1);
  assert.equal(turnAt(turns, 5.5), -1); // between turns
  assert.equal(turnAt(turns, 6), 2);
  assert.equal(turnAt(turns, 8), -1);
});

test("the tooltip says who, when, what, the tools and a cut-off", () => {
  const spoken = turn("agent", 61.25, 65, {
    text: "One pizza, then?",
    tools: ["lookup_menu", "place_order"],
    interrupted: true,
  });
  assert.equal(
    tooltip(spoken),
    "agent 1:01.3–1:05.0\nOne pizza, then?\ntools: lookup_menu, place_order\n(interrupted)",
  );
  assert.equal(tooltip(turn("user", 0, 2)), "user 0:00.0–0:02.0\nuser at 0");
  assert.equal(clock(9.96), "0:10.0");
});
