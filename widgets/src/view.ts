// The client's DOM: header (role, model badge, status, agent state, buttons, meter),
// an error line, the transcript pane and the text composer.

export interface View {
  root: HTMLElement;
  role: HTMLElement;
  state: HTMLElement;
  status: HTMLElement;
  connect: HTMLButtonElement;
  mic: HTMLButtonElement;
  enableAudio: HTMLButtonElement;
  meter: HTMLElement;
  error: HTMLElement;
  transcript: HTMLElement;
  input: HTMLInputElement;
  send: HTMLButtonElement;
}

function make<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = "",
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

export function buildView(role: string, modelLabel: string): View {
  const root = make("div", "rico-voice-client");
  const header = make("div", "rico-header");
  const local = modelLabel === "local";
  const badge = make(
    "span",
    `rico-pill rico-model-badge${local ? " rico-local" : ""}`,
    local ? "LOCAL MODEL — not OpenAI" : "OpenAI Realtime",
  );
  const status = make("span", "rico-pill rico-status", "idle");
  const state = make("span", "rico-pill rico-state", "agent: —");
  const connect = make("button", "rico-connect", "Connect");
  const mic = make("button", "rico-mic", "Mic off");
  const enableAudio = make("button", "rico-enable-audio", "Click to enable audio");
  enableAudio.hidden = true;
  const meter = make("div", "rico-meter");
  const fill = make("div", "rico-meter-fill");
  meter.title = "agent audio level";
  meter.appendChild(fill);
  const roleName = make("span", "rico-role", role);
  header.append(
    roleName,
    badge,
    status,
    state,
    make("span", "rico-spacer"),
    meter,
    enableAudio,
    mic,
    connect,
  );
  const error = make("div", "rico-error");
  error.setAttribute("role", "alert");
  const transcript = make("div", "rico-transcript");
  transcript.setAttribute("aria-live", "polite");
  const composer = make("div", "rico-composer");
  const input = make("input", "rico-text-input");
  input.placeholder = "Type to the agent and press Enter";
  const send = make("button", "rico-send", "Send");
  composer.append(input, send);
  root.append(header, error, transcript, composer);
  return { root, role: roleName, state, status, connect, mic, enableAudio, meter: fill, error, transcript, input, send };
}
