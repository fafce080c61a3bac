// The live transcript: lines merged by segment id, so interim text is replaced in place
// and a segment keeps its place in the order it started.

import type { TranscriptLine } from "./state";

/**
 * What ``update`` changes in ``line`` of the same id, or null: nothing. A final line is not
 * taken back to interim by a late update.
 */
export function merged(
  line: Readonly<TranscriptLine>,
  update: Readonly<TranscriptLine>,
): Pick<TranscriptLine, "text" | "final"> | null {
  if (line.final && !update.final) return null;
  if (line.text === update.text && line.final === update.final) return null;
  return { text: update.text, final: update.final };
}

/** How close to the bottom (px) counts as reading the newest line: only then follow it. */
const STICK_PX = 40;

export class Transcript {
  readonly lines: TranscriptLine[] = [];
  private readonly byId = new Map<string, { line: TranscriptLine; node: HTMLElement }>();
  /** Following the newest line; a user who scrolled up to read is left where they are. */
  private following = true;
  private readonly resized: ResizeObserver;

  constructor(private readonly pane: HTMLElement) {
    pane.addEventListener("scroll", () => {
      this.following = pane.scrollHeight - pane.scrollTop - pane.clientHeight < STICK_PX;
    });
    // the pane shrinks when a panel or an error appears above it: keep the newest in view
    this.resized = new ResizeObserver(() => this.follow());
    this.resized.observe(pane);
  }

  /**
   * Add or update a line; an unknown id starts a new line at the bottom. Returns whether
   * anything changed. A final line is not taken back to interim by a late update.
   */
  upsert(update: TranscriptLine): boolean {
    const known = this.byId.get(update.id);
    if (known) {
      const change = merged(known.line, update);
      if (!change) return false;
      Object.assign(known.line, change);
      this.draw(known.line, known.node);
    } else {
      const line = { ...update };
      const doc = this.pane.ownerDocument;
      const node = doc.createElement("div");
      const who = doc.createElement("span");
      who.className = "rico-who";
      who.textContent = line.speaker === "user" ? "You" : "Agent";
      node.append(who, doc.createElement("span"));
      this.byId.set(line.id, { line, node });
      this.lines.push(line);
      this.draw(line, node);
      this.pane.appendChild(node);
    }
    this.follow();
    return true;
  }

  close(): void {
    this.resized.disconnect();
  }

  private draw(line: TranscriptLine, node: HTMLElement): void {
    node.className = `rico-line rico-${line.speaker}${line.final ? "" : " rico-interim"}`;
    node.lastElementChild!.textContent = line.text;
  }

  private follow(): void {
    if (this.following) this.pane.scrollTop = this.pane.scrollHeight;
  }
}
