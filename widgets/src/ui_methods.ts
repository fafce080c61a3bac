// The client's built-in UI methods, called by the agent's tools over LiveKit RPC
// (a role binds a tool to one with `ui: <method>`). Every payload is {arguments, result?};
// whatever the model wrote is sanitized before it reaches the page, because JupyterLab
// renders outputs in the user's own origin.

import DOMPurify from "dompurify";
import { marked } from "marked";

type Args = Record<string, unknown>;

/** A UI method: gets the tool call's arguments, returns what the model is told. */
export type UiMethod = (args: Args, result: unknown) => Promise<string>;

function text(value: unknown, name: string): string {
  if (typeof value !== "string") throw new Error(`argument '${name}' must be a string`);
  return value;
}

function markdown(source: string): string {
  return DOMPurify.sanitize(marked.parse(source, { async: false }) as string, {
    FORBID_TAGS: ["style", "form", "input"],
  });
}

/** The panel area above the transcript: one panel per method, newest on top. */
export class Panels {
  constructor(private readonly area: HTMLElement) {}

  private panel(kind: string, title: string): HTMLElement {
    let node = this.area.querySelector<HTMLElement>(`.rico-panel-${kind}`);
    if (!node) {
      node = document.createElement("section");
      node.className = `rico-panel rico-panel-${kind}`;
      this.area.prepend(node);
    }
    node.replaceChildren();
    if (title) {
      const heading = document.createElement("div");
      heading.className = "rico-panel-title";
      heading.textContent = title;
      node.appendChild(heading);
    }
    return node;
  }

  methods(): Record<string, UiMethod> {
    return {
      show_markdown: async (args, result) => {
        const source = args.markdown ?? (typeof result === "string" ? result : undefined);
        const panel = this.panel("markdown", typeof args.title === "string" ? args.title : "");
        const body = document.createElement("div");
        body.className = "rico-markdown";
        body.innerHTML = markdown(text(source, "markdown"));
        panel.appendChild(body);
        return "shown";
      },
      show_table: async (args, result) => {
        const rows = (args.rows ?? result) as unknown;
        if (!Array.isArray(rows)) throw new Error("argument 'rows' must be a list");
        const panel = this.panel("table", typeof args.title === "string" ? args.title : "");
        const columns = Array.isArray(args.columns)
          ? args.columns.map(String)
          : [...new Set(rows.flatMap((row) => (row && typeof row === "object" && !Array.isArray(row) ? Object.keys(row) : [])))];
        const table = document.createElement("table");
        table.className = "rico-table";
        const head = table.createTHead().insertRow();
        for (const column of columns) head.insertCell().textContent = column;
        const body = table.createTBody();
        for (const row of rows) {
          const tr = body.insertRow();
          const cells = Array.isArray(row) ? row : columns.map((c) => (row as Args)[c]);
          for (const cell of cells) tr.insertCell().textContent = cell == null ? "" : String(cell);
        }
        panel.appendChild(table);
        return `shown ${rows.length} rows`;
      },
      ask: (args) =>
        new Promise<string>((resolve, reject) => {
          const choices = args.choices;
          if (!Array.isArray(choices) || choices.length === 0) {
            reject(new Error("argument 'choices' must be a non-empty list"));
            return;
          }
          const panel = this.panel("ask", text(args.question, "question"));
          const buttons = document.createElement("div");
          buttons.className = "rico-choices";
          for (const choice of choices.map(String)) {
            const button = document.createElement("button");
            button.className = "rico-choice";
            button.textContent = choice;
            button.onclick = () => {
              panel.classList.add("rico-answered");
              for (const b of buttons.querySelectorAll("button")) b.disabled = true;
              button.classList.add("rico-chosen");
              resolve(choice);
            };
            buttons.appendChild(button);
          }
          panel.appendChild(buttons);
        }),
    };
  }
}
