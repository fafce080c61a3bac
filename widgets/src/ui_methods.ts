// The client's built-in UI methods, called by the agent's tools over LiveKit RPC
// (a role binds a tool to one with `ui: <method>`; rico_lab/client_methods.py has their
// argument schemas, docs/client_methods.md what each answers). Every payload is
// {arguments, result?}. Whatever the model wrote reaches the page either as Markdown through
// marked + DOMPurify or as textContent, never as HTML of its own: JupyterLab renders outputs
// in the user's own origin, next to their kernel.

import DOMPurify from "dompurify";
import { marked } from "marked";

type Args = Record<string, unknown>;

/** A UI method: gets the tool call's arguments, returns what the model is told. */
export type UiMethod = (args: Args, result: unknown) => Promise<string>;

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
    throw new Error("the call's payload is not JSON");
  }
  if (!isObject(call)) throw new Error("the call's payload must be {arguments, result?}");
  const args = call.arguments ?? {};
  if (!isObject(args)) throw new Error("the call's arguments must be an object");
  return { arguments: args, result: call.result };
}

/** What the methods need from the rest of the client. */
export interface PanelHost {
  /** end_session was called: the agent says goodbye, then closes the room. */
  ending(reason: string): void;
}

/** The only images shown: inline PNG, JPEG, GIF or WebP (no fetches, no SVG). */
export const IMAGE_URI = /^data:image\/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}$/i;
const IMAGE_ONLY =
  "argument 'image' must be an image as a data: URI (data:image/png;base64,...): " +
  "only data: URIs of PNG/JPEG/GIF/WebP are allowed, no links and no other formats";

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
  if (typeof value !== "string") throw new Error(`argument '${name}' must be a string`);
  return value;
}

export function optionalText(value: unknown, name: string): string {
  return value === undefined || value === null ? "" : text(value, name);
}

export function strings(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== "string")) {
    throw new Error(`argument '${name}' must be a non-empty list of strings`);
  }
  return value as string[];
}

export interface Field {
  name: string;
  label: string;
  type: "text" | "number";
}

export function fieldsOf(value: unknown): Field[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new Error("argument 'fields' must be a non-empty list of {name, label?, type?}");
  }
  const seen = new Set<string>();
  return value.map((field: unknown, i) => {
    const where = `fields[${i}]`;
    if (!field || typeof field !== "object" || Array.isArray(field)) {
      throw new Error(`${where} must be an object {name, label?, type?}`);
    }
    const { name, label, type } = field as Args;
    if (typeof name !== "string" || !name) throw new Error(`${where}.name must be a string`);
    if (seen.has(name)) throw new Error(`${where}.name '${name}' is used twice`);
    seen.add(name);
    if (type !== undefined && type !== "text" && type !== "number") {
      throw new Error(`${where}.type must be "text" or "number"`);
    }
    return { name, label: optionalText(label, `${where}.label`) || name, type: type ?? "text" };
  });
}

function isEmptyList(value: unknown): boolean {
  return Array.isArray(value) && value.length === 0;
}

export function cellText(cell: unknown): string {
  if (cell === null || cell === undefined) return "";
  return typeof cell === "object" ? JSON.stringify(cell) : String(cell);
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

  methods(): Record<string, UiMethod> {
    return {
      show_markdown: async (args, result) => {
        const source = args.markdown ?? (typeof result === "string" ? result : undefined);
        const body = this.make("div", "rico-markdown");
        body.append(markdown(text(source, "markdown")));
        this.panel("markdown", optionalText(args.title, "title")).append(body);
        return "shown";
      },
      show_table: async (args, result) => this.showTable(args, result),
      show_image: async (args) => {
        const image = text(args.image, "image").replace(/\s+/g, "");
        if (!IMAGE_URI.test(image)) throw new Error(IMAGE_ONLY);
        const img = this.make("img", "rico-image");
        img.alt = optionalText(args.alt, "alt");
        const title = optionalText(args.title, "title");
        img.src = image;
        try {
          await img.decode();
        } catch {
          throw new Error("argument 'image' could not be decoded as a PNG, JPEG, GIF or WebP");
        }
        this.panel("image", title).append(img);
        return "shown";
      },
      ask: async (args) => {
        const question = text(args.question, "question");
        // a model may send the other one as null or []: that is not giving it
        const given = (v: unknown) => v !== undefined && v !== null && !isEmptyList(v);
        const hasChoices = given(args.choices);
        const hasFields = given(args.fields);
        if (hasChoices === hasFields) {
          throw new Error(
            "ask takes exactly one of 'choices' (buttons to pick one from) or 'fields' (a form)",
          );
        }
        return hasChoices
          ? this.ask(question, (answer) => this.choices(strings(args.choices, "choices"), answer))
          : this.ask(question, (answer) => this.form(fieldsOf(args.fields), answer));
      },
      save_note: async (args) => {
        const note = text(args.text, "text");
        const title = optionalText(args.title, "title");
        const panel = this.panel("notes", "Notes", true);
        let list = panel.querySelector<HTMLOListElement>(":scope > .rico-notes");
        if (!list) panel.append((list = this.make("ol", "rico-notes")));
        const item = this.make("li", "rico-note");
        if (title) item.append(this.make("div", "rico-note-title", title));
        item.append(this.make("div", "rico-note-text", note));
        list.append(item);
        list.scrollTop = list.scrollHeight;
        return "saved";
      },
      end_session: async (args) => {
        this.host.ending(optionalText(args.reason, "reason"));
        return "ending";
      },
    };
  }

  /** The client left the room: a question on show can no longer be answered. */
  cancel(why: string): void {
    this.unanswered?.(why);
  }

  private showTable(args: Args, result: unknown): string {
    const rows = (args.rows ?? result) as unknown;
    if (!Array.isArray(rows)) throw new Error("argument 'rows' must be a list");
    if (rows.some((row) => !row || typeof row !== "object")) {
      throw new Error("argument 'rows' must hold objects (column → value) or lists");
    }
    const columns =
      args.columns === undefined || args.columns === null
        ? [...new Set(rows.flatMap((row) => (Array.isArray(row) ? [] : Object.keys(row))))]
        : strings(args.columns, "columns");
    const table = this.make("table", "rico-table");
    const head = table.createTHead().insertRow();
    for (const column of columns) head.insertCell().textContent = column;
    const body = table.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      const cells = Array.isArray(row) ? row : columns.map((c) => (row as Args)[c]);
      for (const cell of cells) tr.insertCell().textContent = cellText(cell);
    }
    this.panel("table", optionalText(args.title, "title")).append(table);
    return `shown ${rows.length} rows`;
  }

  /**
   * Show ``question`` with the controls ``build`` makes (arguments are checked there, before
   * anything changes) and wait for the user: the agent's RPC timeout bounds the wait. A newer
   * question replaces this one, which then answers with an error.
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
      this.cancel("a newer question replaced this one before the user answered");
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
