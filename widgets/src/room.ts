// The LiveKit side of one client: its own Room, the agent participant it waits for (and
// what its attributes say: state, role, model and tool errors), the microphone, typed text,
// latency and UI reports out, transcription streams in. It reports everything through
// RoomOutputs and knows nothing of the DOM or the anywidget model.

import {
  ConnectionError,
  ConnectionErrorReason,
  ConnectionState,
  DisconnectReason,
  type LocalTrackPublication,
  MediaDeviceFailure,
  type Participant,
  RemoteAudioTrack,
  type RemoteParticipant,
  type RemoteTrack,
  Room,
  RoomEvent,
  type RoomEventCallbacks,
  RpcError,
  type TextStreamReader,
  Track,
  TrackEvent,
} from "livekit-client";

import { askForShortMicPackets } from "./packets";
import { ATTRIBUTE, TOPIC } from "./protocol";
import type { LiveState, TranscriptLine } from "./state";
import { message, type UiReport } from "./ui_methods";

export interface RoomOutputs {
  /** The live state changed (the whole of it is passed). */
  state(state: Readonly<LiveState>): void;
  agentAudio(track: RemoteAudioTrack, subscribed: boolean): void;
  /** The microphone track as published (a restart brings a new one), or null: none. */
  micTrack(track: MediaStreamTrack | null): void;
  line(line: TranscriptLine): void;
  /** The browser refused to start playback until the user clicks. */
  playbackBlocked(blocked: boolean): void;
  /** The agent advertised the role it runs, that role's version, and its model's label. */
  agentRole(role: string, version: string, model: string): void;
  /** The session ended the way the agent meant it to: end_session, then the room closed. */
  ended(): void;
}

/** Who set the error on show, so that resolving one problem clears only its own message. */
type ErrorSource = "connect" | "agent" | "model" | "tool" | "mic" | "send" | "disconnect";

/** Agent attributes shown in the error line while set, and how each is worded. */
const ERROR_ATTRIBUTES: Record<string, ["model" | "tool", (value: string) => string]> = {
  [ATTRIBUTE.error]: ["model", (value) => `Model error: ${value}`],
  [ATTRIBUTE.tool_error]: ["tool", toolFailure],
};

/** How the room goes away after end_session: the agent deletes it. */
const ENDING_REASONS = new Set([
  DisconnectReason.ROOM_DELETED,
  DisconnectReason.ROOM_CLOSED,
  DisconnectReason.PARTICIPANT_REMOVED,
]);

export class VoiceRoom {
  private readonly room = new Room({ adaptiveStream: false, dynacast: false });
  private readonly live: LiveState = { status: "idle", agent_state: "", mic: "off", error: "" };
  private errorSource: ErrorSource | null = null;
  private readonly unlisten: (() => void)[] = [];
  /** While joining: settles with whether the room is open (the mic comes after). */
  private opening: Promise<boolean> | null = null;
  private agentIdentity = "";
  private agentTimer: number | undefined;
  /** The error attributes last seen, so an unchanged one is not shown again. */
  private readonly errorAttributes = new Map<string, string>();
  /** end_session was called: the agent leaving and the room closing end the session. */
  private ending = false;
  /** Typed lines get ids of their own; the time part keeps them apart across re-renders. */
  private typed = 0;
  /** Stops following the published microphone track's restarts. */
  private unfollowMic: (() => void) | null = null;

  constructor(private readonly out: RoomOutputs) {
    this.listen(RoomEvent.ParticipantConnected, (p) => this.onParticipant(p));
    this.listen(RoomEvent.ParticipantAttributesChanged, (_changed, p) => this.onParticipant(p));
    this.listen(RoomEvent.ParticipantDisconnected, (p) => this.onParticipantLeft(p));
    this.listen(RoomEvent.TrackSubscribed, (track, _pub, p) => this.onTrack(track, p, true));
    this.listen(RoomEvent.TrackUnsubscribed, (track, _pub, p) => this.onTrack(track, p, false));
    this.listen(RoomEvent.LocalTrackPublished, (pub) => this.onLocalTrack(pub, true));
    this.listen(RoomEvent.LocalTrackUnpublished, (pub) => this.onLocalTrack(pub, false));
    this.listen(RoomEvent.AudioPlaybackStatusChanged, () =>
      out.playbackBlocked(!this.room.canPlaybackAudio),
    );
    this.listen(RoomEvent.Reconnecting, () => this.set({ status: "connecting" }));
    this.listen(RoomEvent.Reconnected, () => this.set({ status: "connected" }));
    this.listen(RoomEvent.Disconnected, (reason) => this.onDisconnected(reason));
    this.room.registerTextStreamHandler(TOPIC.transcription, (reader, info) => {
      void this.readSegment(reader, info.identity);
    });
    this.unlisten.push(() => this.room.unregisterTextStreamHandler(TOPIC.transcription));
  }

  get state(): Readonly<LiveState> {
    return this.live;
  }

  /** Join with ``token``, then publish the microphone; errors end up in the state. */
  async connect(url: string, token: string, agentTimeoutS: number): Promise<void> {
    if (this.room.state !== ConnectionState.Disconnected) return;
    this.opening = this.open(url, token, agentTimeoutS);
    const opened = await this.opening.finally(() => (this.opening = null));
    if (opened) await this.setMic(true);
  }

  async disconnect(): Promise<void> {
    await this.room.disconnect();
  }

  async toggleMic(): Promise<void> {
    await this.setMic(this.live.mic !== "on");
  }

  /**
   * Send typed text to the agent on the chat topic, as a user turn. Returns false (with an
   * error shown) when there is no connection to send it on, so the caller keeps the text.
   */
  sendText(text: string): boolean {
    if (this.room.state === ConnectionState.Disconnected) {
      this.fail("send", "Not connected — press Connect, then send again.");
      return false;
    }
    this.typed += 1;
    const id = `typed-${Date.now().toString(36)}-${this.typed}`;
    this.out.line({ id, speaker: "user", text, final: true });
    void this.deliver(text);
    return true;
  }

  /**
   * Tell the agent how long the user waited for a reply, measured here (latency.ts): JSON
   * `{"latency_s", "after"}` on the reliable data channel, to the agent alone.
   */
  reportLatency(latencyS: number, after: "speech" | "text", endedAt: number): void {
    if (!this.agentIdentity || this.room.state !== ConnectionState.Connected) return;
    const fields = { latency_s: latencyS, after, ended: endedAt };
    const report = new TextEncoder().encode(JSON.stringify(fields));
    this.room.localParticipant
      .publishData(report, {
        reliable: true,
        topic: TOPIC.latency, // the agent reads it
        destinationIdentities: [this.agentIdentity],
      })
      .catch((error: unknown) => console.warn("rico_lab: latency report not sent:", error));
  }

  /**
   * Tell ``caller`` (the agent that called a UI method) what the method showed: JSON
   * UiReport on the reliable data channel. Never throws: the call's answer matters more.
   */
  reportUi(caller: string, report: UiReport): void {
    if (this.room.state !== ConnectionState.Connected) {
      console.warn("rico_lab: UI report not sent, not connected:", report);
      return;
    }
    this.room.localParticipant
      .publishData(new TextEncoder().encode(JSON.stringify(report)), {
        reliable: true,
        topic: TOPIC.ui,
        destinationIdentities: [caller],
      })
      .catch((error: unknown) => console.warn("rico_lab: UI report not sent:", error));
  }

  /**
   * Answer RPC calls to ``method`` (a role tool with `ui:` calls one). Only the agent may
   * call; what ``handler`` throws reaches the caller with its message, for the model to read.
   * ``handler`` also gets the caller's identity.
   */
  serve(method: string, handler: (payload: string, caller: string) => Promise<string>): void {
    this.room.registerRpcMethod(method, async ({ callerIdentity, payload }) => {
      if (!this.room.getParticipantByIdentity(callerIdentity)?.isAgent) {
        throw new RpcError(RpcError.ErrorCode.APPLICATION_ERROR, message("only_agent"));
      }
      try {
        return await handler(payload, callerIdentity);
      } catch (error) {
        throw new RpcError(RpcError.ErrorCode.APPLICATION_ERROR, messageOf(error));
      }
    });
    this.unlisten.push(() => this.room.unregisterRpcMethod(method));
  }

  /**
   * The agent called end_session: from now on its leaving and the room's deletion are the
   * normal end of this session, not errors. A new connect forgets this.
   */
  expectEnd(): void {
    this.ending = true;
  }

  async startAudio(): Promise<void> {
    await this.room.startAudio();
    this.out.playbackBlocked(!this.room.canPlaybackAudio);
  }

  /** Stop for good: listeners first, so the disconnect reports nothing to a closed view. */
  close(): void {
    window.clearTimeout(this.agentTimer);
    this.unfollowMic?.();
    for (const unlisten of this.unlisten) unlisten();
    void this.room.disconnect();
  }

  private async open(url: string, token: string, agentTimeoutS: number): Promise<boolean> {
    this.clearError();
    this.ending = false;
    if (!url || !token) {
      this.fail("connect", "This client has no LiveKit URL or token — make it with the lab.", {
        status: "error",
      });
      return false;
    }
    this.set({ status: "connecting", agent_state: "connecting" });
    try {
      await this.room.connect(url, token);
    } catch (error) {
      if (error instanceof ConnectionError && error.reason === ConnectionErrorReason.Cancelled) {
        this.set({ status: "disconnected", agent_state: "" });
      } else {
        this.fail("connect", connectFailure(url, error), { status: "error", agent_state: "" });
      }
      return false;
    }
    askForShortMicPackets(this.room);
    this.set({ status: "connected" });
    this.out.playbackBlocked(!this.room.canPlaybackAudio);
    this.waitForAgent(agentTimeoutS);
    return true;
  }

  private waitForAgent(seconds: number): void {
    for (const participant of this.room.remoteParticipants.values()) {
      this.onParticipant(participant);
    }
    if (this.agentIdentity || !(seconds > 0)) return;
    this.agentTimer = window.setTimeout(() => {
      if (this.agentIdentity || this.room.state !== ConnectionState.Connected) return;
      const hint = "is the lab running? (lab.errors may say why)";
      this.fail("agent", `The agent did not join within ${seconds} s — ${hint}`);
    }, seconds * 1000);
  }

  private async setMic(on: boolean): Promise<void> {
    if (this.room.state !== ConnectionState.Connected) return;
    try {
      await this.room.localParticipant.setMicrophoneEnabled(on);
      this.set({ mic: on ? "on" : "off" });
      this.clearError("mic");
    } catch (error) {
      const failure = MediaDeviceFailure.getFailure(error);
      if (failure === MediaDeviceFailure.PermissionDenied) {
        this.fail("mic", "Microphone permission denied — you can still type.", { mic: "denied" });
      } else {
        this.fail("mic", `${micProblem(failure, error)} — you can still type.`, {
          mic: "unavailable",
        });
      }
    }
  }

  private async deliver(text: string): Promise<void> {
    await this.opening;
    if (this.room.state !== ConnectionState.Connected) {
      this.fail("send", "Not connected — the text was not sent.");
      return;
    }
    try {
      await this.room.localParticipant.sendText(text, { topic: TOPIC.chat });
      this.clearError("send");
    } catch (error) {
      this.fail("send", `The text could not be sent: ${messageOf(error)}`);
    }
  }

  /** The agent is the first participant LiveKit marks as one (livekit-agents joins so). */
  private onParticipant(participant: Participant): void {
    if (!participant.isAgent) return;
    if (!this.agentIdentity) {
      this.agentIdentity = participant.identity;
      window.clearTimeout(this.agentTimer);
      this.clearError("agent");
    }
    if (participant.identity !== this.agentIdentity) return;
    const attributes = participant.attributes;
    this.set({ agent_state: attributes[ATTRIBUTE.agent_state] || "initializing" });
    const role = attributes[ATTRIBUTE.role] ?? "";
    const version = attributes[ATTRIBUTE.role_version] ?? "";
    const model = attributes[ATTRIBUTE.model] ?? "";
    if (role || version || model) this.out.agentRole(role, version, model);
    for (const [key, [source, describe]] of Object.entries(ERROR_ATTRIBUTES)) {
      const value = attributes[key] ?? "";
      if (value === (this.errorAttributes.get(key) ?? "")) continue;
      this.errorAttributes.set(key, value);
      if (value) this.fail(source, describe(value));
      else this.clearError(source);
    }
  }

  private onParticipantLeft(participant: RemoteParticipant): void {
    if (participant.identity !== this.agentIdentity) return;
    this.agentIdentity = "";
    this.errorAttributes.clear();
    if (this.ending) {
      // the goodbye is said and the room is closing: leave it rather than wait alone
      this.set({ agent_state: "" });
      void this.room.disconnect();
      return;
    }
    this.fail("agent", "The agent left the conversation — is the lab still running?", {
      agent_state: "",
    });
  }

  private onTrack(track: RemoteTrack, participant: RemoteParticipant, subscribed: boolean): void {
    if (track instanceof RemoteAudioTrack && participant.isAgent) {
      this.out.agentAudio(track, subscribed);
    }
  }

  /** The microphone's published track, followed through restarts (a new device, unmute). */
  private onLocalTrack(publication: LocalTrackPublication, published: boolean): void {
    const track = publication.track;
    if (publication.source !== Track.Source.Microphone || !track) return;
    this.unfollowMic?.();
    this.unfollowMic = null;
    if (!published) {
      this.out.micTrack(null);
      return;
    }
    const restarted = () => this.out.micTrack(track.mediaStreamTrack);
    track.on(TrackEvent.Restarted, restarted);
    this.unfollowMic = () => track.off(TrackEvent.Restarted, restarted);
    this.out.micTrack(track.mediaStreamTrack);
  }

  private onDisconnected(reason?: DisconnectReason): void {
    window.clearTimeout(this.agentTimer);
    this.unfollowMic?.();
    this.unfollowMic = null;
    this.out.micTrack(null);
    this.agentIdentity = "";
    this.errorAttributes.clear();
    const mic = this.live.mic === "on" ? "off" : this.live.mic;
    // a failed connect also lands here; open() reports that one itself
    if (this.opening) return;
    const change: Partial<LiveState> = { status: "disconnected", agent_state: "", mic };
    const normal = reason === undefined || reason === DisconnectReason.CLIENT_INITIATED;
    if (this.ending && (normal || ENDING_REASONS.has(reason))) {
      // what went wrong during the session no longer applies to it
      this.ending = false;
      this.errorSource = null;
      this.set({ ...change, error: "" });
      this.out.ended();
    } else if (normal) {
      this.set(change);
    } else {
      this.fail("disconnect", `Disconnected by the server: ${disconnectReason(reason)}.`, change);
    }
  }

  /**
   * One transcription segment stream. The agent's streams carry deltas and say "final" in
   * their trailer; the user's (sent by the agent on the user's behalf) come as one short
   * stream per update, each holding the whole text so far. Either way the text of a stream
   * replaces its segment's line.
   */
  private async readSegment(reader: TextStreamReader, identity: string): Promise<void> {
    const speaker = identity === this.room.localParticipant.identity ? "user" : "agent";
    if (speaker === "agent" && !this.room.getParticipantByIdentity(identity)?.isAgent) return;
    const id = reader.info.attributes?.[ATTRIBUTE.segment_id] ?? reader.info.id;
    let text = "";
    let aborted = false;
    try {
      for await (const chunk of reader) {
        text += chunk;
        this.out.line({ id, speaker, text, final: false });
      }
    } catch {
      aborted = true; // an interrupted line ends abnormally: what was said stands
    }
    // the trailer's attributes are merged into info.attributes when the stream closes
    const final = aborted || reader.info.attributes?.[ATTRIBUTE.transcription_final] !== "false";
    this.out.line({ id, speaker, text, final });
  }

  private set(change: Partial<LiveState>): void {
    Object.assign(this.live, change);
    this.out.state(this.live);
  }

  private fail(source: ErrorSource, message: string, change: Partial<LiveState> = {}): void {
    this.errorSource = source;
    this.set({ ...change, error: message });
  }

  /** Clear the error on show if ``source`` set it (any error when no source is given). */
  private clearError(source?: ErrorSource): void {
    if (source && source !== this.errorSource) return;
    this.errorSource = null;
    if (this.live.error) this.set({ error: "" });
  }

  private listen<E extends keyof RoomEventCallbacks>(
    event: E,
    handler: RoomEventCallbacks[E],
  ): void {
    this.room.on(event, handler);
    this.unlisten.push(() => this.room.off(event, handler));
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The `rico_lab.tool_error` attribute: JSON {tool, message, n} from the agent. */
function toolFailure(value: string): string {
  try {
    const { tool, message } = JSON.parse(value) as { tool?: unknown; message?: unknown };
    if (typeof tool === "string" && typeof message === "string") {
      return `Tool ${tool} failed: ${message}`;
    }
  } catch {
    // not JSON: shown as it is, below
  }
  return `A tool failed: ${value}`;
}

function connectFailure(url: string, error: unknown): string {
  if (error instanceof ConnectionError && error.reason === ConnectionErrorReason.NotAllowed) {
    return `The LiveKit server at ${url} refused the token (expired? join again): ${error.message}`;
  }
  return `Cannot reach the LiveKit server at ${url}: ${messageOf(error)}`;
}

function micProblem(failure: MediaDeviceFailure | undefined, error: unknown): string {
  if (failure === MediaDeviceFailure.NotFound) return "No microphone found";
  if (failure === MediaDeviceFailure.DeviceInUse) return "The microphone is in use elsewhere";
  if (!navigator.mediaDevices) return "No microphone on this page (it needs https or localhost)";
  return `The microphone could not be opened (${messageOf(error)})`;
}

const DISCONNECT_REASONS: Partial<Record<DisconnectReason, string>> = {
  [DisconnectReason.DUPLICATE_IDENTITY]: "another client joined with the same identity",
  [DisconnectReason.SERVER_SHUTDOWN]: "the LiveKit server shut down",
  [DisconnectReason.PARTICIPANT_REMOVED]: "this participant was removed from the room",
  [DisconnectReason.ROOM_DELETED]: "the room was deleted",
  [DisconnectReason.ROOM_CLOSED]: "the room was closed",
  [DisconnectReason.JOIN_FAILURE]: "joining failed",
  [DisconnectReason.SIGNAL_CLOSE]: "the connection to the server was lost",
  [DisconnectReason.CONNECTION_TIMEOUT]: "the connection timed out",
};

function disconnectReason(reason: DisconnectReason): string {
  return DISCONNECT_REASONS[reason] ?? DisconnectReason[reason] ?? `reason ${reason}`;
}
