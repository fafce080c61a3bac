// The live transcript: segments stream in as text streams on "lk.transcription", each
// updated until final; lines are merged by segment id so interim text is replaced in place.

import type { TranscriptLine } from "./model";

export class Transcript {
  readonly lines: TranscriptLine[] = [];
  private readonly byId = new Map<string, TranscriptLine>();
  private readonly nodes = new Map<string, HTMLElement>();

  constructor(
    private readonly pane: HTMLElement,
    private readonly onChange: () => void,
  ) {}

  /** Add or update a line; an unknown id starts a new line at the bottom. */
  upsert(line: TranscriptLine): void {
    const known = this.byId.get(line.id);
    if (known) {
      Object.assign(known, line);
    } else {
      const copy = { ...line };
      this.byId.set(line.id, copy);
      this.lines.push(copy);
    }
    this.draw(this.byId.get(line.id)!);
    this.onChange();
  }

  private draw(line: TranscriptLine): void {
    let node = this.nodes.get(line.id);
    if (!node) {
      node = document.createElement("div");
      const who = document.createElement("span");
      who.className = "rico-who";
      who.textContent = line.speaker === "user" ? "You" : "Agent";
      node.append(who, document.createElement("span"));
      this.nodes.set(line.id, node);
      this.pane.appendChild(node);
    }
    node.className = `rico-line rico-${line.speaker}${line.final ? "" : " rico-interim"}`;
    node.lastElementChild!.textContent = line.text;
    this.pane.scrollTop = this.pane.scrollHeight;
  }
}
