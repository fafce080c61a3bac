// Fuzzing the voice client's side of the client-method door (fast-check): whatever payload
// the agent sends, a method refuses it with a documented message or takes arguments the
// panels show as text; tests/test_fuzz_client_methods.py holds the same properties for the
// headless client. RICO_FUZZ_EXAMPLES=N runs N inputs per property (benchmarks/fuzz.py).

import assert from "node:assert/strict";
import { test } from "node:test";

import fc from "fast-check";

import rules from "../../rico_lab/client_methods.json";
import cases from "../../tests/client_method_cases.json";
import { checkCall, IMAGE_URI, type MethodName, type Row, tableOf } from "../src/ui_methods";

const RUNS = Number(process.env.RICO_FUZZ_EXAMPLES) || 200;
const METHODS = Object.keys(rules.methods) as MethodName[];

/** A documented message as a pattern: each `{placeholder}` matches any text. */
function pattern(template: string): string {
  return template
    .replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    .replace(/\\\{\w+\\\}/g, ".*");
}
const DOCUMENTED = new RegExp(
  `^(?:${Object.values(rules.messages).map(pattern).join("|")})$`,
  "s",
);

/** Names that every object inherits: a model may well use one as a column or a key. */
const INHERITED = ["constructor", "toString", "__proto__", "valueOf", "hasOwnProperty"];
const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom(...INHERITED));
const value = fc.jsonValue({ maxDepth: 2 });

/** A method and its payload: any text, any JSON, or a call with arguments of any type. */
const payloads = fc.constantFrom(...METHODS).chain((method) => {
  const names = Object.keys(rules.methods[method].arguments);
  const args = fc.dictionary(fc.oneof(fc.constantFrom(...names), key), value, { maxKeys: 4 });
  const call = fc.record({ arguments: args, result: value }, { requiredKeys: ["arguments"] });
  const shared = fc.constantFrom(...cases.cases.filter((c) => c.method === method));
  return fc.tuple(
    fc.constant(method),
    fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.json({ maxDepth: 3 }),
      call.map((c) => JSON.stringify(c)),
      shared.map((c) => c.payload),
    ),
  );
});

test("fuzz: a payload is refused with a documented message, or its checks pass", () => {
  fc.assert(
    fc.property(payloads, ([method, payload]) => {
      try {
        checkCall(method, payload);
      } catch (error) {
        assert.ok(error instanceof Error);
        assert.match(error.message, DOCUMENTED);
      }
    }),
    { numRuns: RUNS },
  );
});

test("fuzz: an accepted image is an inline PNG, JPEG, GIF or WebP, never a link", () => {
  const image = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc
      .tuple(
        fc.constantFrom("data:", "DATA:", "javascript:", "http://x/", " data:", "data:\t"),
        fc.constantFrom("image/png", "image/svg+xml", "text/html", "image/webp"),
        fc.constantFrom(";base64,", ",", ";base64 ,"),
        fc.base64String({ maxLength: 12 }),
        fc.string({ maxLength: 3 }),
      )
      .map((parts) => parts.join("")),
  );
  fc.assert(
    fc.property(image, (uri) => {
      let shown: string;
      try {
        shown = checkCall("show_image", JSON.stringify({ arguments: { image: uri } })).image;
      } catch (error) {
        assert.equal((error as Error).message, rules.messages.image);
        return;
      }
      assert.match(shown, IMAGE_URI);
      assert.match(shown, /^data:image\/(png|jpeg|gif|webp);base64,/i);
    }),
    { numRuns: RUNS },
  );
});

// found by fast-check (shrunk): a column a row lacks showed what every object inherits,
// e.g. "function Object() { [native code] }" under a column named "constructor"
test("fuzz: a cell a row does not have is shown empty, whatever the column is named", () => {
  const rows = fc.array(fc.dictionary(key, value, { maxKeys: 3 }), { maxLength: 3 });
  fc.assert(
    fc.property(rows, fc.array(key, { maxLength: 4 }), (objects, columns) => {
      const table = tableOf(objects as Row[], columns);
      objects.forEach((row, r) => {
        columns.forEach((column, c) => {
          if (!Object.prototype.hasOwnProperty.call(row, column)) assert.equal(table.rows[r][c], "");
        });
      });
    }),
    { numRuns: RUNS, examples: [[[{}], ["constructor"]]] },
  );
});
