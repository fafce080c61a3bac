// The widget state, key for key the synced traitlets of VoiceClient
// (rico_lab/notebook/voice_client.py) and the state web_client.py's /join gives the page;
// tests/test_widget_state.py holds the three to the same keys. anywidget's model of it is
// AnyModel<VoiceClientState> (@anywidget/types).

export type Status = "idle" | "connecting" | "connected" | "disconnected" | "error";
export type Mic = "off" | "on" | "denied" | "unavailable";

export interface TranscriptLine {
  id: string;
  speaker: "user" | "agent";
  text: string;
  final: boolean;
}

export interface VoiceClientState {
  // Python -> browser
  url: string;
  token: string;
  room: string;
  identity: string;
  role: string;
  model_label: string;
  auto_connect: boolean;
  agent_timeout_s: number;
  // browser -> Python
  status: Status;
  /** "" (not in a conversation), "connecting" (no agent yet), then the agent's state. */
  agent_state: string;
  mic: Mic;
  error: string;
  transcript: TranscriptLine[];
  /** The role version the agent last advertised (its role-version attribute). */
  role_version: string;
}

/** The browser-owned keys that follow the LiveKit connection. */
export type LiveState = Pick<VoiceClientState, "status" | "agent_state" | "mic" | "error">;

/** One-off actions sent from Python with `VoiceClient.send(...)`. */
export type Command =
  | { type: "connect" }
  | { type: "disconnect" }
  | { type: "send_text"; text: string };
