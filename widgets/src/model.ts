// The widget state, key for key the traitlets of rico_lab/voice_client.py (VoiceClient).

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
  /** "" (not in a conversation), "connecting" (no agent yet), then lk.agent.state. */
  agent_state: string;
  mic: Mic;
  error: string;
  transcript: TranscriptLine[];
  /** The role version the agent last advertised (its `rico_lab.role_version` attribute). */
  role_version: string;
}

/** The browser-owned keys that follow the LiveKit connection. */
export type LiveState = Pick<VoiceClientState, "status" | "agent_state" | "mic" | "error">;

/** The part of anywidget's model interface this widget uses. */
export interface Model {
  get<K extends keyof VoiceClientState>(key: K): VoiceClientState[K];
  set<K extends keyof VoiceClientState>(key: K, value: VoiceClientState[K]): void;
  save_changes(): void;
  on(event: string, callback: (...args: unknown[]) => void): void;
  off(event: string, callback: (...args: unknown[]) => void): void;
}

/** One-off actions sent from Python with `VoiceClient.send(...)`. */
export type Command =
  | { type: "connect" }
  | { type: "disconnect" }
  | { type: "send_text"; text: string };
