// The client's built-in UI methods, called by the agent's tools over LiveKit RPC
// (a role binds a tool to one with `ui: <method>`; docs/client_methods.md has what each
// answers). Every payload is {arguments, result?}. The rules are written once, in
// rico_lab/client_methods.json, which the headless client of rehearsals
// (rico_lab/client_methods.py) serves the same methods from: how each argument is checked,
// the messages, the image rule, the answers. Whatever the model wrote reaches the page either
// as Markdown through marked + DOMPurify or as textContent, never as HTML of its own:
// JupyterLab renders outputs in the user's own origin, next to their kernel.

import DOMPurify from "dompurify";
import { marked } from "marked";

import rules from "../../rico_lab/client_methods.json";

type Args = Record<string, unknown>;
/** What fills a template's placeholders. */
type Values = Readonly<Record<string, string | number>>;

export type MethodName = keyof typeof rules.methods;
type MessageKey = keyof typeof rules.messages;

/** How client_methods.json describes one method (its `parameters` are for the model). */
interface MethodRule {
  /** Argument name -> check kind, in the order they are checked: the first error is the one. */
  arguments: Readonly<Record<string, CheckKind>>;
  /** At most one of these may be given, and one must be. */
  exactly_one_of?: readonly string[];
  /** The answer's template: `{rows}` the rows shown, `{answer}` the user's answer. */
  answer: string;
}

/** Cast, as JSON gives a kind as any string: each is a name in CHECKS below, and the shared
 * cases (tests/client_method_cases.json, run by the unit tests) exercise every one. */
const METHODS = rules.methods as Readonly<Record<MethodName, MethodRule>>;
const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

/** A row of show_table: column -> value, or values in column order. */
export type Row = Args | unknown[];

export interface Field {
  name: string;
  label: string;
  type: "text" | "number";
}

/** Each method's arguments once checked: what its kinds return (a not given one of
 * `exactly_one_of` is absent). */
export interface Arguments extends Record<MethodName, object> {
  show_markdown: { markdown: string; title: string };
  show_table: { rows: Row[]; columns: string[] | undefined; title: string };
  show_image: { image: string; alt: string; title: string };
  ask: { question: string } & (
    | { choices: string[]; fields?: undefined }
    | { fields: Field[]; choices?: undefined }
  );
  save_note: { text: string; title: string };
  end_session: { reason: string };
}

/** ``template`` with each ``{name}`` of ``values`` replaced; other braces stay as written. */
export function fill(template: string, values: Values): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => String(values[key] ?? whole));
}

/** The message ``key`` of client_methods.json, its placeholders filled in. */
export function message(key: MessageKey, values: Values = {}): string {
  return fill(rules.messages[key], values);
}

/** What tools.py sends a UI method: the model's arguments, and a Python function's result. */
export interface UiCall {
  arguments: Args;
  result?: unknown;
}

function isObject(value: unknown): value is Args {
  return !!value && typeof value === "object" && !Array.isArray(value);
}

/** A call's RPC payload, JSON ``{arguments, result?}``; what is wrong with it, thrown. */
export function parseCall(payload: string): UiCall {
  let call: unknown;
  try {
    call = JSON.parse(payload);
  } catch {
    throw new Error(message("payload_not_json"));
  }
  if (!isObject(call)) throw new Error(message("payload_shape"));
  const args = call.arguments ?? {};
  if (!isObject(args)) throw new Error(message("arguments_shape"));
  return { arguments: args, result: call.result };
}

/** A model may send the other one of `exactly_one_of` as null or []: that is not giving it. */
function given(value: unknown): boolean {
  return value !== undefined && value !== null && !(Array.isArray(value) && value.length === 0);
}

/**
 * ``method``'s payload with its arguments checked, as client_methods.json says; the first
 * thing wrong is thrown, with its message, before anything is shown.
 */
export function checkCall<M extends MethodName>(method: M, payload: string): Arguments[M] {
  const { arguments: args, result } = parseCall(payload);
  const rule = METHODS[method];
  const oneOf = rule.exactly_one_of ?? [];
  const checked: Args = {};
  for (const [name, kind] of Object.entries(rule.arguments)) {
    if (oneOf.includes(name)) {
      if (oneOf.filter((other) => given(args[other])).length !== 1) {
        throw new Error(message("exactly_one_of"));
      }
      if (!given(args[name])) continue;
    }
    checked[name] = CHECKS[kind](args[name], name, result);
  }
  return checked as Arguments[M];
}

/** What the methods need from the rest of the client. */
export interface PanelHost {
  /** end_session was called: the agent says goodbye, then closes the room. */
  ending(reason: string): void;
}

/** The only images shown: inline PNG, JPEG, GIF or WebP (no fetches, no SVG); the scheme
 * and type in any case, as browsers read them (and as client_methods.py matches it). */
export const IMAGE_URI = new RegExp(rules.image_uri, "i");

/** Attributes that load or navigate somewhere; a data: URI is refused in all of them. */
const URL_ATTRIBUTES = ["href", "src", "xlink:href", "action", "formaction", "poster"];

/** The sanitizer, made on first use: the argument checks below need no DOM (their tests). */
let purify: ReturnType<typeof DOMPurify> | null = null;

function sanitizer(): ReturnType<typeof DOMPurify> {
  if (!purify) {
    purify = DOMPurify(window);
    purify.addHook("afterSanitizeAttributes", keepSafeUrls);
  }
  return purify;
}

function keepSafeUrls(node: Element): void {
  for (const name of URL_ATTRIBUTES) {
    const value = node.getAttribute(name);
    if (value === null) continue;
    const image =
      (node.localName === "img" && name === "src") ||
      (node.localName === "image" && name.endsWith("href"));
    // Markdown images follow show_image's rule: a remote one would tell a server the page
    // was read (and could carry what the model put in its URL)
    const allowed = image
      ? IMAGE_URI.test(value.trim())
      : // browsers skip control characters in a URL's scheme, so "da\tta:" is data: too
        // eslint-disable-next-line no-control-regex
        !/^data:/i.test(value.replace(/[\s\x00-\x20]/g, ""));
    if (!allowed) node.removeAttribute(name);
  }
  if (node.localName === "a" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank"); // never navigate JupyterLab itself away
    node.setAttribute("rel", "noopener noreferrer");
  }
}

function markdown(source: string): DocumentFragment {
  return sanitizer().sanitize(marked.parse(source, { async: false }) as string, {
    // controls and styles could pass for the client's own; media, srcset and background
    // would fetch from wherever the model pointed them
    FORBID_TAGS: [
      "style",
      "form",
      "input",
      "button",
      "textarea",
      "select",
      "audio",
      "video",
      "source",
      "track",
    ],
    FORBID_ATTR: ["style", "srcset", "background"],
    RETURN_DOM_FRAGMENT: true,
  });
}

export function text(value: unknown, name: string): string {
  if (typeof value !== "string") throw new Error(message("text", { name }));
  return value;
}

export function optionalText(value: unknown, name: string): string {
  return value === undefined || value === null ? "" : text(value, name);
}

export function strings(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== "string")) {
    throw new Error(message("strings", { name }));
  }
  return value as string[];
}

function rowsOf(value: unknown): Row[] {
  if (!Array.isArray(value)) throw new Error(message("rows_list"));
  if (value.some((row) => !row || typeof row !== "object")) {
    throw new Error(message("rows_items"));
  }
  return value as Row[];
}

function imageOf(value: unknown, name: string): string {
  const image = text(value, name).replace(/\s+/g, "");
  if (!IMAGE_URI.test(image)) throw new Error(message("image"));
  return image;
}

export function fieldsOf(value: unknown): Field[] {
  if (!Array.isArray(value) || value.length === 0) throw new Error(message("fields"));
  const seen = new Set<string>();
  return value.map((field: unknown, i) => {
    if (!isObject(field)) throw new Error(message("field_object", { i }));
    const { name, label, type } = field;
    if (typeof name !== "string" || !name) throw new Error(message("field_name", { i }));
    if (seen.has(name)) throw new Error(message("field_twice", { i, field: name }));
    seen.add(name);
    if (type !== undefined && type !== "text" && type !== "number") {
      throw new Error(message("field_type", { i }));
    }
    return { name, label: optionalText(label, `fields[${i}].label`) || name, type: type ?? "text" };
  });
}

/** The check kinds of client_methods.json: the argument's value (and the Python side's
 * result, which stands in for a `*_or_result` argument not given) to its checked value. */
const CHECKS = {
  text,
  optional_text: optionalText,
  text_or_result: (value, name, result) =>
    text(value ?? (typeof result === "string" ? result : undefined), name),
  strings,
  optional_strings: (value, name) =>
    value === undefined || value === null ? undefined : strings(value, name),
  rows_or_result: (value, _name, result) => rowsOf(value ?? result),
  image: imageOf,
  fields: fieldsOf,
} satisfies Record<string, (value: unknown, name: string, result: unknown) => unknown>;
type CheckKind = keyof typeof CHECKS;

/** What ``method`` answers: its template, with the rows shown or (ask) the user's answer. */
export function answerOf(method: MethodName, args: object, answer = ""): string {
  const rows = "rows" in args && Array.isArray(args.rows) ? args.rows.length : 0;
  return fill(METHODS[method].answer, { rows, answer });
}

export function cellText(cell: unknown): string {
  if (cell === null || cell === undefined) return "";
  return typeof cell === "object" ? JSON.stringify(cell) : String(cell);
}

/** show_table's header and cells, as shown. */
export interface Table {
  columns: string[];
  rows: string[][];
}

const hasOwn = Object.prototype.hasOwnProperty;

/** ``rows`` under ``columns``, by default the object rows' keys in order of appearance. */
export function tableOf(rows: Row[], columns?: string[]): Table {
  const names =
    columns ?? [...new Set(rows.flatMap((row) => (Array.isArray(row) ? [] : Object.keys(row))))];
  // own keys only: a column named "constructor" must not show what every object inherits
  const cells = (row: Row) =>
    Array.isArray(row) ? row : names.map((name) => (hasOwn.call(row, name) ? row[name] : null));
  return { columns: names, rows: rows.map((row) => cells(row).map(cellText)) };
}

/** A table as reported: the header line, then a line per row, cells joined by " | ". */
export function tableText(table: Table): string {
  return [table.columns, ...table.rows].map((cells) => cells.join(" | ")).join("\n");
}

/** A question as reported: its choices, or its form's labels, joined by " | ". */
export function askText(args: Arguments["ask"]): string {
  return (args.choices ?? args.fields.map((field) => field.label)).join(" | ");
}

/** Python's str.splitlines() boundaries, so that both clients split a text alike. */
// the file, group and record separators are among them
// eslint-disable-next-line no-control-regex
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/;

/** Text as reported: its lines trimmed, empty ones dropped (what layout leaves). */
export function normalized(text: string): string {
  return text
    .split(LINE_BREAK)
    .map((line) => line.trim())
    .filter((line) => line)
    .join("\n");
}

/** What the page reports on the `rico_lab.ui` topic once a method has shown something. */
export interface UiReport {
  method: MethodName;
  title: string;
  text: string;
  /** The method's answer, or null when it failed after showing (an unanswered question). */
  answer: string | null;
  error: string | null;
}

/** A UI method: the call's RPC payload to its answer, and what it showed to ``report``. */
export type UiMethod = (payload: string, report: (report: UiReport) => void) => Promise<string>;

/** What a method put on screen: title and text as the user sees them (not yet normalized),
 * and for ask the user's answer to come. */
interface Shown {
  title: string;
  text: string;
  user?: Promise<string>;
}

/**
 * The panel area above the transcript: one panel per method, the latest used on top.
 * Each call replaces its method's panel, except notes, which accumulate.
 */
export class Panels {
  private readonly doc: Document;
  /** Rejects the question on show, if the user has not answered it yet. */
  private unanswered: ((why: string) => void) | null = null;

  constructor(
    private readonly area: HTMLElement,
    private readonly host: PanelHost,
  ) {
    this.doc = area.ownerDocument;
  }

  /** The methods by name, as client_methods.json lists them. */
  methods(): Record<string, UiMethod> {
    return Object.fromEntries(
      METHOD_NAMES.map((method): [string, UiMethod] => [
        method,
        (payload, report) => this.call(method, payload, report),
      ]),
    );
  }

  /** The client left the room: a question on show can no longer be answered. */
  cancel(why: string): void {
    this.unanswered?.(why);
  }

  /**
   * Check the call, show it, and once it settles report what it showed (a refused call
   * showed nothing, so it reports nothing); answer, or throw what went wrong.
   */
  private async call<M extends MethodName>(
    method: M,
    payload: string,
    report: (report: UiReport) => void,
  ): Promise<string> {
    const args = checkCall(method, payload);
    const shown = await this.show[method](args);
    const seen = { method, title: normalized(shown.title), text: normalized(shown.text) };
    try {
      const answer = answerOf(method, args, await shown.user);
      report({ ...seen, answer, error: null });
      return answer;
    } catch (error) {
      // only ask fails after showing: replaced or left unanswered, with an Error of ours
      report({ ...seen, answer: null, error: (error as Error).message });
      throw error;
    }
  }

  /** Each method's panel, from its checked arguments. */
  private readonly show: {
    [M in MethodName]: (args: Arguments[M]) => Shown | Promise<Shown>;
  } = {
    show_markdown: ({ markdown: source, title }) => {
      const body = this.make("div", "rico-markdown");
      body.append(markdown(source));
      this.panel("markdown", title).append(body);
      return { title, text: body.textContent ?? "" };
    },
    show_table: ({ rows, columns, title }) => {
      const shown = tableOf(rows, columns);
      const table = this.make("table", "rico-table");
      const head = table.createTHead().insertRow();
      for (const column of shown.columns) head.insertCell().textContent = column;
      const body = table.createTBody();
      for (const cells of shown.rows) {
        const tr = body.insertRow();
        for (const cell of cells) tr.insertCell().textContent = cell;
      }
      this.panel("table", title).append(table);
      return { title, text: tableText(shown) };
    },
    show_image: async ({ image, alt, title }) => {
      const img = this.make("img", "rico-image");
      img.alt = alt;
      img.src = image;
      try {
        await img.decode();
      } catch {
        throw new Error(message("image_decode"));
      }
      this.panel("image", title).append(img);
      return { title, text: alt };
    },
    ask: (args) => {
      const user = args.choices
        ? this.ask(args.question, (answer) => this.choices(args.choices, answer))
        : this.ask(args.question, (answer) => this.form(args.fields, answer));
      return { title: args.question, text: askText(args), user };
    },
    save_note: ({ text: note, title }) => {
      const panel = this.panel("notes", "Notes", true);
      let list = panel.querySelector<HTMLOListElement>(":scope > .rico-notes");
      if (!list) panel.append((list = this.make("ol", "rico-notes")));
      const item = this.make("li", "rico-note");
      if (title) item.append(this.make("div", "rico-note-title", title));
      item.append(this.make("div", "rico-note-text", note));
      list.append(item);
      list.scrollTop = list.scrollHeight;
      return { title, text: note };
    },
    end_session: ({ reason }) => {
      this.host.ending(reason);
      return { title: "", text: reason };
    },
  };

  /**
   * Show ``question`` with the controls ``build`` makes and wait for the user: the agent's
   * RPC timeout bounds the wait. A newer question replaces this one, which then answers with
   * an error.
   */
  private ask(
    question: string,
    build: (answer: (value: string) => void) => HTMLElement,
  ): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      let panel: HTMLElement | null = null;
      const settle = () => {
        this.unanswered = null;
        panel?.classList.add("rico-answered");
        for (const control of panel?.querySelectorAll("button, input") ?? []) {
          (control as HTMLButtonElement | HTMLInputElement).disabled = true;
        }
      };
      const controls = build((value) => {
        settle();
        resolve(value);
      });
      this.cancel(message("replaced"));
      panel = this.panel("ask", question);
      panel.append(controls);
      this.unanswered = (why) => {
        settle();
        reject(new Error(why));
      };
    });
  }

  private choices(choices: string[], answer: (value: string) => void): HTMLElement {
    const row = this.make("div", "rico-choices");
    for (const choice of choices) {
      const button = this.make("button", "rico-choice", choice);
      button.type = "button";
      button.onclick = () => {
        button.classList.add("rico-chosen");
        answer(choice);
      };
      row.append(button);
    }
    return row;
  }

  /** One labelled input per field; submitting (button or Enter) answers {name: value}. */
  private form(fields: Field[], answer: (value: string) => void): HTMLElement {
    const form = this.make("form", "rico-form");
    form.noValidate = true;
    const submit = this.make("button", "rico-submit", "Submit");
    submit.type = "submit";
    // inputs get no name attribute: a model-chosen one could shadow the form's own properties
    const inputs = fields.map((field) => {
      const label = this.make("label", "rico-field");
      const input = this.make("input", "rico-field-input");
      input.type = field.type;
      if (field.type === "number") input.step = "any";
      // typing here must not drive the notebook's keyboard shortcuts; and as JupyterLab
      // swallows the Enter key's default action (implicit submission), Enter submits here
      input.setAttribute("data-lm-suppress-shortcuts", "true");
      input.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" || event.isComposing) return;
        event.preventDefault();
        form.requestSubmit(submit);
      });
      label.append(this.make("span", "rico-field-label", field.label), input);
      form.append(label);
      return input;
    });
    form.append(submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      const values = fields.map((field, i): [string, string | number | null] => {
        const raw = inputs[i].value.trim();
        if (field.type === "text") return [field.name, inputs[i].value];
        return [field.name, raw === "" || Number.isNaN(Number(raw)) ? null : Number(raw)];
      });
      // fromEntries defines own properties, so even a field named __proto__ is kept as data
      answer(JSON.stringify(Object.fromEntries(values)));
    });
    return form;
  }

  /**
   * The panel for ``kind``, moved to the top. Its content is replaced by ``title`` alone,
   * unless ``keep`` (then the title is set only when the panel is new).
   */
  private panel(kind: string, title: string, keep = false): HTMLElement {
    let node = this.area.querySelector<HTMLElement>(`:scope > .rico-panel-${kind}`);
    const fresh = !node;
    if (!node) node = this.make("section", "");
    this.area.prepend(node);
    this.area.scrollTop = 0;
    if (keep && !fresh) return node;
    node.className = `rico-panel rico-panel-${kind}`; // a reused panel starts over
    node.replaceChildren();
    if (title) node.append(this.make("div", "rico-panel-title", title));
    return node;
  }

  private make<K extends keyof HTMLElementTagNameMap>(
    tag: K,
    className: string,
    content = "",
  ): HTMLElementTagNameMap[K] {
    const node = this.doc.createElement(tag);
    node.className = className;
    if (content) node.textContent = content;
    return node;
  }
}
