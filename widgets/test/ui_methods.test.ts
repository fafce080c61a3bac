// What the UI methods accept from the agent (ui_methods.ts): the payload and the arguments.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  cellText,
  fieldsOf,
  IMAGE_URI,
  optionalText,
  parseCall,
  strings,
  text,
} from "../src/ui_methods";

test("a payload is {arguments, result?}; arguments default to none", () => {
  assert.deepEqual(parseCall('{"arguments": {"a": 1}, "result": [2]}'), {
    arguments: { a: 1 },
    result: [2],
  });
  assert.deepEqual(parseCall("{}"), { arguments: {}, result: undefined });
  assert.deepEqual(parseCall('{"arguments": null}'), { arguments: {}, result: undefined });
});

test("a payload that is not that says what is wrong", () => {
  assert.throws(() => parseCall("not json"), /not JSON/);
  assert.throws(() => parseCall("[1]"), /must be \{arguments, result\?\}/);
  assert.throws(() => parseCall('"text"'), /must be \{arguments, result\?\}/);
  assert.throws(() => parseCall('{"arguments": [1]}'), /arguments must be an object/);
});

test("text arguments name the argument they reject", () => {
  assert.equal(text("hi", "title"), "hi");
  assert.throws(() => text(3, "title"), /argument 'title' must be a string/);
  assert.equal(optionalText(undefined, "alt"), "");
  assert.equal(optionalText(null, "alt"), "");
  assert.throws(() => optionalText(false, "alt"), /argument 'alt' must be a string/);
});

test("choices are a non-empty list of strings", () => {
  assert.deepEqual(strings(["a", "b"], "choices"), ["a", "b"]);
  for (const bad of [[], "a", ["a", 1], null]) {
    assert.throws(() => strings(bad, "choices"), /'choices' must be a non-empty list of strings/);
  }
});

test("form fields get a label and a type; a bad one is pointed at", () => {
  assert.deepEqual(fieldsOf([{ name: "age", type: "number" }, { name: "city", label: "City" }]), [
    { name: "age", label: "age", type: "number" },
    { name: "city", label: "City", type: "text" },
  ]);
  assert.throws(() => fieldsOf([]), /'fields' must be a non-empty list/);
  assert.throws(() => fieldsOf(["age"]), /fields\[0\] must be an object/);
  assert.throws(() => fieldsOf([{ label: "x" }]), /fields\[0\]\.name must be a string/);
  const twice = [{ name: "a" }, { name: "a" }];
  assert.throws(() => fieldsOf(twice), /fields\[1\]\.name 'a' is used twice/);
  assert.throws(() => fieldsOf([{ name: "a", type: "date" }]), /fields\[0\]\.type must be/);
  const label = /argument 'fields\[0\]\.label' must be a string/;
  assert.throws(() => fieldsOf([{ name: "a", label: 1 }]), label);
});

test("table cells show as text; objects as their JSON", () => {
  assert.equal(cellText(null), "");
  assert.equal(cellText(undefined), "");
  assert.equal(cellText(1.5), "1.5");
  assert.equal(cellText({ a: [1] }), '{"a":[1]}');
});

test("only inline PNG, JPEG, GIF and WebP images are shown", () => {
  assert.ok(IMAGE_URI.test("data:image/png;base64,iVBORw0KGgo="));
  assert.ok(IMAGE_URI.test("data:image/webp;base64,UklGRg=="));
  for (const bad of [
    "https://example.com/a.png",
    "data:image/svg+xml;base64,PHN2Zz4=",
    "data:image/png,raw",
    'data:image/png;base64,AAAA"onerror=',
  ]) {
    assert.ok(!IMAGE_URI.test(bad), bad);
  }
});
