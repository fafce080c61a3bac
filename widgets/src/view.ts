// The client's DOM: a header (role, the role and version the agent runs, model badge,
// status and agent-state pills), a control row (connect, mic, the last reply's latency,
// audio meter), an error line, a notice line (the session's end), the panels the agent's
// tools fill, the transcript pane and the text composer.
// Class names are stable: the browser tests and users' own CSS select on them.

import type { LiveState } from "./state";

export interface View {
  root: HTMLElement;
  role: HTMLElement;
  roleBadge: HTMLElement;
  badge: HTMLElement;
  status: HTMLElement;
  state: HTMLElement;
  connect: HTMLButtonElement;
  mic: HTMLButtonElement;
  enableAudio: HTMLButtonElement;
  latency: HTMLElement;
  meter: HTMLElement;
  meterFill: HTMLElement;
  error: HTMLElement;
  notice: HTMLElement;
  panels: HTMLElement;
  transcript: HTMLElement;
  input: HTMLInputElement;
  send: HTMLButtonElement;
}

export interface Measures {
  peak: number;
  soundMs: number;
  level: number;
  lines: number;
}

export function buildView(doc: Document): View {
  const make = <K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text = "") => {
    const node = doc.createElement(tag);
    node.className = className;
    node.textContent = text;
    return node;
  };
  const root = make("div", "rico-voice-client");
  const role = make("span", "rico-role");
  const roleBadge = make("span", "rico-pill rico-role-badge");
  roleBadge.hidden = true;
  roleBadge.title = "The role and role version the agent runs now";
  const badge = make("span", "rico-pill rico-model-badge");
  const status = make("span", "rico-pill rico-status");
  const state = make("span", "rico-pill rico-state");
  const header = make("div", "rico-header");
  header.append(role, roleBadge, badge, make("span", "rico-spacer"), status, state);

  const connect = make("button", "rico-connect", "Connect");
  const mic = make("button", "rico-mic", "Mic off");
  const enableAudio = make("button", "rico-enable-audio", "Click to enable audio");
  enableAudio.hidden = true;
  const latency = make("span", "rico-latency");
  latency.hidden = true;
  const meter = make("div", "rico-meter");
  meter.setAttribute("role", "meter");
  meter.setAttribute("aria-label", "Agent audio level");
  meter.setAttribute("aria-valuemin", "0");
  meter.setAttribute("aria-valuemax", "100");
  meter.title = "Agent audio level";
  const meterFill = make("div", "rico-meter-fill");
  meter.appendChild(meterFill);
  const controls = make("div", "rico-controls");
  controls.append(connect, mic, enableAudio, make("span", "rico-spacer"), latency);
  controls.append(make("span", "rico-meter-label", "agent audio"), meter);

  const error = make("div", "rico-error");
  error.setAttribute("role", "alert");
  const notice = make("div", "rico-notice");
  notice.setAttribute("role", "status");
  const panels = make("div", "rico-panels");
  const transcript = make("div", "rico-transcript");
  transcript.setAttribute("aria-live", "polite");
  const input = make("input", "rico-text-input");
  input.type = "text";
  input.placeholder = "Type to the agent, Enter to send";
  input.setAttribute("aria-label", "Message to the agent");
  const send = make("button", "rico-send", "Send");
  const composer = make("div", "rico-composer");
  composer.append(input, send);

  root.append(header, controls, error, notice, panels, transcript, composer);
  return {
    root,
    role,
    roleBadge,
    badge,
    status,
    state,
    connect,
    mic,
    enableAudio,
    latency,
    meter,
    meterFill,
    error,
    notice,
    panels,
    transcript,
    input,
    send,
  };
}

/** Role name and which model answers; the local model must never pass for OpenAI. */
export function showHeader(view: View, role: string, modelLabel: string, room: string): void {
  view.role.textContent = role || "(no role)";
  view.role.title = room ? `room ${room}` : "";
  const local = modelLabel === "local";
  view.badge.classList.toggle("rico-local", local);
  // "" until the agent says which model answers (a page outside Jupyter learns it so)
  view.badge.hidden = !modelLabel;
  view.badge.textContent = local ? "LOCAL MODEL — not OpenAI" : "OpenAI Realtime";
  view.badge.title = local
    ? "Answered by rico_lab's local stand-in model, not OpenAI (set OPENAI_API_KEY for OpenAI)"
    : "Answered by the OpenAI Realtime API";
}

/**
 * What the agent says it runs (its `rico_lab.role` and `rico_lab.role_version` attributes):
 * the badge, and data-role / data-role-version on the root for tests and users' CSS.
 */
export function showAgentRole(view: View, role: string, version: string): void {
  const { root, roleBadge } = view;
  root.dataset.role = role;
  root.dataset.roleVersion = version;
  roleBadge.textContent = [role, version && `v${version}`].filter(Boolean).join(" · ");
  roleBadge.hidden = !roleBadge.textContent;
}

/**
 * The last reply's latency at the listener (latency.ts): data-listener-latency-ms on the root
 * (and data-listener-turn-ended-ms, the epoch time its turn ended), for tests and benchmarks,
 * and a quiet "reply in 420 ms" beside the agent-audio meter.
 */
export function showLatency(
  view: View,
  latencyS: number,
  after: "speech" | "text",
  endedAt: number,
): void {
  const ms = Math.round(latencyS * 1000);
  view.root.dataset.listenerTurnEndedMs = String(Math.round(endedAt * 1000));
  view.root.dataset.listenerLatencyMs = String(ms);
  view.latency.textContent = `reply in ${ms} ms`;
  view.latency.title =
    `The agent's last reply was heard here ${ms} ms after the end of your ` +
    (after === "speech" ? "speech" : "typed message (Enter)");
  view.latency.hidden = false;
}

/** A line about the session itself ("" hides it); ``kind`` is its data-kind, for styles. */
export function showNotice(view: View, text: string, kind = ""): void {
  view.notice.textContent = text;
  view.notice.dataset.kind = kind;
}

const CONNECT_LABELS: Partial<Record<LiveState["status"], string>> = {
  connected: "Disconnect",
  connecting: "Cancel",
};

const MIC_LABELS: Record<LiveState["mic"], string> = {
  on: "Mic on",
  off: "Mic off",
  denied: "Mic blocked",
  unavailable: "No mic",
};

export function showState(view: View, state: Readonly<LiveState>): void {
  const { root, status, connect, mic } = view;
  root.dataset.status = state.status;
  root.dataset.agentState = state.agent_state;
  root.dataset.mic = state.mic;
  status.textContent = state.status;
  status.dataset.value = state.status;
  view.state.textContent = `agent: ${state.agent_state || "—"}`;
  view.state.dataset.value = state.agent_state;
  connect.textContent = CONNECT_LABELS[state.status] ?? "Connect";
  const live = state.status === "connected";
  mic.disabled = !live;
  mic.textContent = MIC_LABELS[state.mic];
  mic.setAttribute("aria-pressed", String(state.mic === "on"));
  mic.title = state.mic === "on" ? "Stop sending your microphone" : "Send your microphone";
  view.send.disabled = !live && state.status !== "connecting";
  view.error.textContent = state.error;
}

/** The measurements the tests read, and the meter (dB scale, -60..0 dBFS). */
export function showMeasures(view: View, measures: Measures): void {
  const data = view.root.dataset;
  setIfChanged(data, "agentAudioPeak", measures.peak.toFixed(4));
  setIfChanged(data, "agentAudioMs", String(Math.round(measures.soundMs)));
  setIfChanged(data, "transcriptCount", String(measures.lines));
  const db = measures.level > 0 ? 20 * Math.log10(measures.level) : -Infinity;
  const percent = Math.round(Math.max(0, Math.min(1, (db + 60) / 60)) * 100);
  view.meterFill.style.width = `${percent}%`;
  view.meter.setAttribute("aria-valuenow", String(percent));
}

function setIfChanged(data: DOMStringMap, key: string, value: string): void {
  if (data[key] !== value) data[key] = value;
}
