// What the UI methods accept from the agent (ui_methods.ts): the payload and the arguments;
// what they answer and report. The shared cases (tests/client_method_cases.json) run here
// as they do against the headless client (tests/test_client_methods.py).

import assert from "node:assert/strict";
import { test } from "node:test";

import cases from "../../tests/client_method_cases.json";
import {
  answerOf,
  type Arguments,
  askText,
  cellText,
  checkCall,
  fieldsOf,
  fill,
  IMAGE_URI,
  type MethodName,
  normalized,
  optionalText,
  parseCall,
  strings,
  tableOf,
  tableText,
  text,
} from "../src/ui_methods";

interface Case {
  method: MethodName;
  payload: string;
  error?: string;
  user_answer?: string;
  answer?: string;
  title?: string;
  text?: string;
}

/** A call's title and text as the page reports them (before normalizing), from its checked
 * arguments; but show_markdown's text (null here): the page reads it off the rendered panel,
 * which takes a DOM, so the browser test checks it. */
const seen: { [M in MethodName]: (args: Arguments[M]) => [string, string | null] } = {
  show_markdown: ({ title }) => [title, null],
  show_table: ({ rows, columns, title }) => [title, tableText(tableOf(rows, columns))],
  show_image: ({ alt, title }) => [title, alt],
  ask: (args) => [args.question, askText(args)],
  save_note: ({ text: note, title }) => [title, note],
  end_session: ({ reason }) => ["", reason],
};

/** An accepted call's answer (ask: given the user's), title and text. */
function outcome<M extends MethodName>(method: M, payload: string, user?: string) {
  const args = checkCall(method, payload);
  const [title, shown] = seen[method](args);
  return { answer: answerOf(method, args, user), title, text: shown };
}

for (const [n, c] of (cases.cases as Case[]).entries()) {
  test(`case ${n}: ${c.method} ${c.payload.slice(0, 60)}`, () => {
    if (c.error !== undefined) {
      assert.throws(() => checkCall(c.method, c.payload), { message: c.error });
      return;
    }
    const { answer, title, text: shown } = outcome(c.method, c.payload, c.user_answer);
    assert.equal(answer, c.answer);
    assert.equal(normalized(title), c.title);
    if (shown !== null) assert.equal(normalized(shown), c.text);
  });
}

test("templates fill their placeholders and leave other braces", () => {
  const template = "fields[{i}].name '{field}' {name, label?} {other}";
  assert.equal(fill(template, { i: 2, field: "a" }), "fields[2].name 'a' {name, label?} {other}");
});

test("a reported text is its trimmed, non-empty lines", () => {
  assert.equal(normalized("  Menu \n\n\t- a\r\nb\u2028  "), "Menu\n- a\nb");
  assert.equal(normalized(" \n "), "");
});

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
