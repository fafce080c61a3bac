// The anywidget front-end module of rico_lab's voice client: joins one LiveKit room with the
// token from lab.join(), plays and measures the agent's audio, publishes the microphone,
// shows agent state and the live transcript, and sends typed text. Everything here talks
// to LiveKit over WebRTC, never through the kernel, so it keeps going while a cell runs.

import {
  ConnectionState,
  type Participant,
  RemoteAudioTrack,
  type RemoteTrack,
  Room,
  RoomEvent,
  type TextStreamReader,
} from "livekit-client";

import { AgentAudio } from "./audio";
import type { Command, Model, VoiceClientState } from "./model";
import { injectStyle } from "./style";
import { Transcript } from "./transcript";
import { buildView, type View } from "./view";

const SYNC_MS = 250; // how often measurements and the transcript reach the model

class VoiceClient {
  private readonly room = new Room({ adaptiveStream: false, dynacast: false });
  private readonly audio: AgentAudio;
  private readonly transcript: Transcript;
  private agentTimer: number | undefined;
  private syncTimer: number;
  private transcriptDirty = false;
  private agentIdentity = "";

  constructor(
    private readonly model: Model,
    private readonly view: View,
  ) {
    this.audio = new AgentAudio(view.root, view.meter);
    this.transcript = new Transcript(view.transcript, () => (this.transcriptDirty = true));
    view.connect.onclick = () =>
      void (this.room.state === ConnectionState.Disconnected ? this.connect() : this.disconnect());
    view.mic.onclick = () => void this.toggleMic();
    view.enableAudio.onclick = () => void this.enableAudio();
    view.send.onclick = () => void this.sendText();
    view.input.onkeydown = (event) => {
      if (event.key === "Enter") void this.sendText();
    };
    this.room
      .on(RoomEvent.TrackSubscribed, (track, _pub, participant) => this.onTrack(track, participant))
      .on(RoomEvent.ParticipantConnected, (participant) => this.onParticipant(participant))
      .on(RoomEvent.ParticipantAttributesChanged, (_changed, participant) =>
        this.onParticipant(participant),
      )
      .on(RoomEvent.AudioPlaybackStatusChanged, () => this.showAudioButton())
      .on(RoomEvent.Disconnected, (reason) => this.onDisconnected(reason));
    this.room.registerTextStreamHandler("lk.transcription", (reader, info) =>
      void this.readSegment(reader, info.identity),
    );
    this.syncTimer = window.setInterval(() => this.sync(), SYNC_MS);
    this.set("status", "idle");
  }

  async connect(): Promise<void> {
    const url = this.model.get("url");
    this.setError("");
    this.set("status", "connecting");
    this.set("agent_state", "connecting");
    try {
      await this.room.connect(url, this.model.get("token"));
    } catch (error) {
      this.set("status", "error");
      this.set("agent_state", "");
      this.setError(`Cannot reach the LiveKit server at ${url}: ${message(error)}`);
      return;
    }
    this.set("status", "connected");
    this.view.connect.textContent = "Disconnect";
    this.showAudioButton();
    const seconds = this.model.get("agent_timeout_s");
    this.agentTimer = window.setTimeout(() => {
      if (!this.agentIdentity) {
        this.setError(
          `The agent did not join within ${seconds} s — is the lab running? (lab.errors may say why)`,
        );
      }
    }, seconds * 1000);
    for (const participant of this.room.remoteParticipants.values()) this.onParticipant(participant);
    await this.setMic(true);
  }

  async disconnect(): Promise<void> {
    await this.room.disconnect();
  }

  async command(command: Command): Promise<void> {
    if (command.type === "connect" && this.room.state === ConnectionState.Disconnected) {
      await this.connect();
    } else if (command.type === "disconnect") {
      await this.disconnect();
    } else if (command.type === "send_text") {
      await this.sendText(command.text);
    }
  }

  close(): void {
    window.clearInterval(this.syncTimer);
    window.clearTimeout(this.agentTimer);
    this.room.unregisterTextStreamHandler("lk.transcription");
    this.room.removeAllListeners();
    void this.room.disconnect();
    this.audio.close();
  }

  private async setMic(on: boolean): Promise<void> {
    try {
      await this.room.localParticipant.setMicrophoneEnabled(on);
      this.set("mic", on ? "on" : "off");
      this.view.mic.textContent = on ? "Mic on" : "Mic off";
    } catch (error) {
      const denied = error instanceof Error && error.name === "NotAllowedError";
      this.set("mic", denied ? "denied" : "unavailable");
      this.view.mic.textContent = "No mic";
      this.setError(
        denied
          ? "Microphone permission denied — you can still type."
          : `No microphone available (${message(error)}) — you can still type.`,
      );
    }
  }

  private async toggleMic(): Promise<void> {
    if (this.room.state !== ConnectionState.Connected) return;
    await this.setMic(this.model.get("mic") !== "on");
  }

  private async enableAudio(): Promise<void> {
    await this.room.startAudio();
    await this.audio.resume();
    this.showAudioButton();
  }

  private showAudioButton(): void {
    this.view.enableAudio.hidden = this.room.canPlaybackAudio;
  }

  private async sendText(text = this.view.input.value.trim()): Promise<void> {
    if (!text || this.room.state !== ConnectionState.Connected) return;
    this.view.input.value = "";
    this.transcript.upsert({ id: `typed-${Date.now()}`, speaker: "user", text, final: true });
    await this.room.localParticipant.sendText(text, { topic: "lk.chat" });
  }

  private onTrack(track: RemoteTrack, participant: Participant): void {
    this.onParticipant(participant);
    if (track instanceof RemoteAudioTrack) this.audio.play(track);
  }

  /** The agent is the remote participant whose attributes carry an agent state. */
  private onParticipant(participant: Participant): void {
    const attributes = participant.attributes;
    const isAgent = "lk.agent.state" in attributes || "rico_lab.model" in attributes;
    if (!isAgent) return;
    this.agentIdentity = participant.identity;
    window.clearTimeout(this.agentTimer);
    this.set("agent_state", attributes["lk.agent.state"] ?? "initializing");
    const failure = attributes["rico_lab.error"];
    if (failure) this.setError(`Model error: ${failure}`);
    else if (this.model.get("error").startsWith("The agent did not join")) this.setError("");
  }

  private onDisconnected(reason?: unknown): void {
    window.clearTimeout(this.agentTimer);
    this.agentIdentity = "";
    this.set("status", "disconnected");
    this.set("agent_state", "");
    this.set("mic", "off");
    this.view.connect.textContent = "Connect";
    this.view.mic.textContent = "Mic off";
    if (reason !== undefined) this.setError(`Disconnected (${String(reason)}).`);
  }

  private async readSegment(reader: TextStreamReader, identity: string): Promise<void> {
    const id = reader.info.attributes?.["lk.segment_id"] ?? reader.info.id;
    const speaker = identity === this.room.localParticipant.identity ? "user" : "agent";
    let text = "";
    try {
      for await (const chunk of reader) {
        text += chunk;
        this.transcript.upsert({ id, speaker, text, final: false });
      }
    } catch {
      // an interrupted agent line ends abnormally: keep what was said
    }
    // a streamed segment says it is final in its trailer, which replaces info.attributes
    const final = reader.info.attributes?.["lk.transcription_final"] !== "false";
    this.transcript.upsert({ id, speaker, text, final });
  }

  private set<K extends keyof VoiceClientState>(key: K, value: VoiceClientState[K]): void {
    this.model.set(key, value);
    this.model.save_changes();
    this.render();
  }

  private setError(text: string): void {
    this.view.error.textContent = text;
    this.set("error", text);
  }

  private render(): void {
    const { root, status, state } = this.view;
    status.textContent = this.model.get("status");
    state.textContent = `agent: ${this.model.get("agent_state") || "—"}`;
    root.dataset.status = this.model.get("status");
    root.dataset.agentState = this.model.get("agent_state");
    root.dataset.mic = this.model.get("mic");
  }

  /** Publish measurements to the DOM (tests read them) and the transcript to Python. */
  private sync(): void {
    const { root } = this.view;
    root.dataset.agentAudioPeak = this.audio.peak.toFixed(4);
    root.dataset.agentAudioMs = String(Math.round(this.audio.soundMs));
    root.dataset.transcriptCount = String(this.transcript.lines.length);
    if (this.transcriptDirty) {
      this.transcriptDirty = false;
      this.model.set("transcript", this.transcript.lines.map((line) => ({ ...line })));
      this.model.save_changes();
    }
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export default {
  render({ model, el }: { model: Model; el: HTMLElement }): () => void {
    injectStyle(el.ownerDocument);
    const view = buildView(model.get("role"), model.get("model_label"));
    el.appendChild(view.root);
    const client = new VoiceClient(model, view);
    const onCommand = (content: unknown) => void client.command(content as Command);
    const onRole = () => (view.role.textContent = model.get("role"));
    model.on("msg:custom", onCommand);
    model.on("change:role", onRole);
    if (model.get("auto_connect")) void client.connect();
    return () => {
      model.off("msg:custom", onCommand);
      model.off("change:role", onRole);
      client.close();
      view.root.remove();
    };
  },
};
