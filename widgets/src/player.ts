// The anywidget front-end module of rico_lab's player (rico_lab/notebook/player.py): plays
// one conversation's stereo OGG from the bytes Python sent, draws the user's and the agent's
// waveforms, puts each turn on the timeline as a button that seeks the audio to its start
// and plays, and moves a playhead with the audio. All of it in the page, so it never waits
// for the kernel; only the playhead goes back to Python (position_s).

import type { AnyModel, Render } from "@anywidget/types";

import CSS from "./player.css";

/** The widget state: key for key the synced traitlets of Player. */
export interface PlayerState {
  // Python -> browser
  /** The OGG file's bytes (a binary buffer: a DataView in the page). */
  audio: DataView<ArrayBuffer>;
  duration_s: number;
  /** Per channel, user then agent: the peak amplitude (0..1) of each 50 ms block. */
  waveform: number[][];
  turns: Turn[];
  // browser -> Python
  position_s: number;
}

export interface Turn {
  speaker: "user" | "agent";
  text: string;
  /** Seconds from the recording's start. */
  start_s: number;
  end_s: number;
  interrupted: boolean;
  /** The tool calls that started in this turn (or after this user turn, before the next). */
  tools: string[];
}

/** Where a turn's span sits on the timeline, in percent of its width. */
export interface Span {
  left: number;
  width: number;
}

const SPEAKERS = ["user", "agent"] as const;
/** Bars per waveform: the canvas's own width, which CSS stretches to the player's. */
const COLUMNS = 1000;
const WAVE_HEIGHT = 48;
/** The narrowest span, so a one-word turn can still be clicked. */
const MIN_SPAN_PCT = 0.5;
/** Peaks are scaled to the loudest of both channels, but never below this: a silent
 * recording stays flat rather than blowing its noise up to full height. */
const QUIET = 0.01;
/** Channel colours that read on light and dark themes alike. */
const COLOURS = { user: "#1976d2", agent: "#388e3c" };

/** Each turn's span, clamped to the recording and at least MIN_SPAN_PCT wide. */
export function spans(turns: Turn[], durationS: number): Span[] {
  const pct = (s: number) => (100 * Math.min(Math.max(s, 0), durationS)) / (durationS || 1);
  return turns.map((turn) => {
    const left = Math.min(pct(turn.start_s), 100 - MIN_SPAN_PCT);
    return { left, width: Math.max(pct(turn.end_s) - left, MIN_SPAN_PCT) };
  });
}

/**
 * Each channel's peaks as `columns` bar heights in 0..1: each column the loudest of the
 * blocks it covers (or the one block it falls in, when columns outnumber blocks), over the
 * loudest block of both channels, so the two sides' loudness compare.
 */
export function bars(waveform: number[][], columns: number): number[][] {
  const top = Math.max(QUIET, ...waveform.flat());
  return waveform.map((peaks) =>
    Array.from({ length: columns }, (_, column) => {
      const first = Math.floor((column * peaks.length) / columns);
      const last = Math.max(Math.floor(((column + 1) * peaks.length) / columns), first + 1);
      return Math.min(Math.max(0, ...peaks.slice(first, last)) / top, 1);
    }),
  );
}

/** The turn that holds time `s`: the latest to start at or before it and not yet over; -1. */
export function turnAt(turns: Turn[], s: number): number {
  let found = -1;
  turns.forEach((turn, i) => {
    if (turn.start_s <= s && s < turn.end_s && (found < 0 || turn.start_s >= turns[found].start_s))
      found = i;
  });
  return found;
}

/** `m:ss.s`, as the tooltip shows a time. */
export function clock(s: number): string {
  const minutes = Math.floor(s / 60);
  return `${minutes}:${(s - minutes * 60).toFixed(1).padStart(4, "0")}`;
}

/** A span's tooltip: who, when, everything said, the tools, and whether it was cut off. */
export function tooltip(turn: Turn): string {
  const lines = [`${turn.speaker} ${clock(turn.start_s)}–${clock(turn.end_s)}`, turn.text];
  if (turn.tools.length) lines.push(`tools: ${turn.tools.join(", ")}`);
  if (turn.interrupted) lines.push("(interrupted)");
  return lines.join("\n");
}

function drawWave(canvas: HTMLCanvasElement, heights: number[], colour: string): void {
  const context = canvas.getContext("2d");
  if (!context) return; // the page refused a 2D context: the spans and the audio still work
  context.fillStyle = colour;
  heights.forEach((h, x) => {
    const bar = Math.max(h * WAVE_HEIGHT, 1);
    context.fillRect(x, (WAVE_HEIGHT - bar) / 2, 1, bar);
  });
}

class Player {
  readonly root: HTMLElement;
  private readonly audio: HTMLAudioElement;
  private readonly head: HTMLElement;
  private readonly buttons: HTMLButtonElement[] = [];
  private readonly url: string;
  private current = -1;
  private frame = 0;

  constructor(private readonly model: AnyModel<PlayerState>, doc: Document) {
    const make = <K extends keyof HTMLElementTagNameMap>(tag: K, className: string) => {
      const node = doc.createElement(tag);
      node.className = className;
      return node;
    };
    this.root = make("div", "rico-player");
    const style = make("style", "");
    style.textContent = CSS; // in the player itself: it reaches a shadow root as well
    this.url = URL.createObjectURL(new Blob([model.get("audio")], { type: "audio/ogg" }));
    this.audio = make("audio", "rico-player-audio");
    this.audio.controls = true;
    this.audio.preload = "auto";
    this.audio.src = this.url;

    const body = make("div", "rico-player-body");
    const track = make("div", "rico-player-track");
    const waves = bars(model.get("waveform"), COLUMNS);
    SPEAKERS.forEach((speaker, channel) => {
      const label = make("div", "rico-player-label");
      label.textContent = speaker;
      label.dataset.speaker = speaker;
      const canvas = make("canvas", "rico-player-wave");
      canvas.dataset.speaker = speaker;
      canvas.width = COLUMNS;
      canvas.height = WAVE_HEIGHT;
      drawWave(canvas, waves[channel], COLOURS[speaker]);
      body.append(label);
      track.append(canvas);
    });

    const turns = model.get("turns");
    spans(turns, model.get("duration_s")).forEach((span, i) => {
      const turn = turns[i];
      const button = make("button", "rico-player-turn");
      button.type = "button";
      button.dataset.speaker = turn.speaker;
      button.dataset.startS = String(turn.start_s);
      button.dataset.interrupted = String(turn.interrupted);
      button.title = tooltip(turn);
      button.style.left = `${span.left}%`;
      button.style.width = `${span.width}%`;
      const text = make("span", "rico-player-turn-text");
      text.textContent = turn.text;
      button.append(text);
      if (turn.tools.length) {
        const tools = make("span", "rico-player-turn-tools");
        tools.textContent = `⚙ ${turn.tools.join(", ")}`;
        button.append(tools);
      }
      if (turn.interrupted) button.append(make("span", "rico-player-interrupted"));
      button.addEventListener("click", () => this.seek(turn.start_s));
      this.buttons.push(button);
      track.append(button);
    });
    this.head = make("div", "rico-player-head");
    track.append(this.head);
    body.append(track);
    this.root.append(style, this.audio, body);

    for (const event of ["timeupdate", "seeked"]) {
      this.audio.addEventListener(event, () => this.report());
    }
    this.audio.addEventListener("play", () => this.follow());
    this.follow();
  }

  /** A turn was clicked: go to its start and play (the user's click allows the sound). */
  private seek(s: number): void {
    this.audio.currentTime = s;
    this.follow();
    this.audio.play().catch(() => undefined); // refused (no audio device): the head moved
  }

  /** The playhead to Python; the audio element sends it about 4 times a second. */
  private report(): void {
    this.follow();
    this.model.set("position_s", this.audio.currentTime);
    this.model.save_changes();
  }

  /** Put the head at the audio's time, and again every frame while it plays. */
  private follow(): void {
    cancelAnimationFrame(this.frame);
    const s = this.audio.currentTime;
    this.head.style.left = `${(100 * s) / (this.model.get("duration_s") || 1)}%`;
    this.head.dataset.positionS = s.toFixed(3);
    const current = turnAt(this.model.get("turns"), s);
    if (current !== this.current) {
      this.buttons[this.current]?.removeAttribute("data-current");
      this.buttons[current]?.setAttribute("data-current", "");
      this.current = current;
    }
    if (!this.audio.paused) this.frame = requestAnimationFrame(() => this.follow());
  }

  close(): void {
    cancelAnimationFrame(this.frame);
    this.audio.pause();
    URL.revokeObjectURL(this.url);
    this.root.remove();
  }
}

const render: Render<PlayerState> = ({ model, el }) => {
  const player = new Player(model, el.ownerDocument);
  el.appendChild(player.root);
  return () => player.close();
};

export default { render };
