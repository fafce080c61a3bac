// How a transcript line takes an update of its segment (transcript.ts).

import assert from "node:assert/strict";
import { test } from "node:test";

import type { TranscriptLine } from "../src/state";
import { merged } from "../src/transcript";

const line = (text: string, final: boolean): TranscriptLine => ({
  id: "seg-1",
  speaker: "agent",
  text,
  final,
});

test("interim text is replaced by the longer text of the same segment", () => {
  assert.deepEqual(merged(line("Hel", false), line("Hello", false)), {
    text: "Hello",
    final: false,
  });
});

test("an interim line becomes final", () => {
  assert.deepEqual(merged(line("Hello", false), line("Hello.", true)), {
    text: "Hello.",
    final: true,
  });
});

test("a final line is corrected by a later final update", () => {
  assert.deepEqual(merged(line("Hello.", true), line("Hello!", true)), {
    text: "Hello!",
    final: true,
  });
});

test("a late interim update does not take a final line back", () => {
  assert.equal(merged(line("Hello.", true), line("Hel", false)), null);
});

test("the same text and finality change nothing", () => {
  assert.equal(merged(line("Hello", false), line("Hello", false)), null);
  assert.equal(merged(line("Hello.", true), line("Hello.", true)), null);
});
