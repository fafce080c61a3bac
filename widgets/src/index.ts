// The anywidget front-end module of rico_lab's voice client: joins one LiveKit room with the
// token from lab.join(), plays and measures the agent's audio, publishes the microphone,
// shows agent state, the agent's role and the live transcript, sends typed text, answers the
// agent's UI calls (ui_methods.ts) and tells the agent how long each reply took to be heard
// (latency.ts). Media, text, those calls and reports go browser <-> LiveKit over WebRTC,
// never through the kernel, so they keep flowing while a cell runs; only state, the
// transcript and commands travel over the widget comm.

import type { AnyModel, Render } from "@anywidget/types";

import { AgentAudio } from "./audio";
import { type After, ListenerLatency } from "./latency";
import type { Command, LiveState, TranscriptLine, VoiceClientState } from "./state";
import { VoiceRoom } from "./room";
import { injectStyle } from "./style";
import { Transcript } from "./transcript";
import { message, Panels } from "./ui_methods";
import {
  buildView,
  showAgentRole,
  showHeader,
  showLatency,
  showMeasures,
  showNotice,
  showState,
  type View,
} from "./view";

/** Analyser tick and data-* refresh; the tests count on at most 200 ms. */
const MEASURE_MS = 50;
/** Streaming transcript updates reach Python at most this often (final lines at once). */
const TRANSCRIPT_MS = 250;

class VoiceClient {
  private readonly room: VoiceRoom;
  private readonly audio: AgentAudio;
  private readonly latency: ListenerLatency;
  private readonly panels: Panels;
  private readonly transcript: Transcript;
  private readonly timers: number[];
  private readonly disposers: (() => void)[] = [];
  private transcriptDirty = false;
  private playbackBlocked = false;
  /** The reason end_session gave, for the notice when the session is over. */
  private endReason = "";
  private agentState = "";
  /** The model the agent says answers (its `rico_lab.model`), over what Python was told. */
  private agentModel = "";
  private closed = false;

  constructor(
    private readonly model: AnyModel<VoiceClientState>,
    private readonly view: View,
  ) {
    this.transcript = new Transcript(view.transcript);
    // a re-render of the same model (hot reload, a second display) keeps the history;
    // the streams that fed its lines are gone, so they are final now
    for (const line of model.get("transcript") ?? []) {
      this.transcript.upsert({ ...line, final: true });
    }
    this.latency = new ListenerLatency(
      () => (this.closed ? null : this.audio.audioContext),
      (latencyS, after, endedAt) => this.onLatency(latencyS, after, endedAt),
    );
    this.audio = new AgentAudio(
      view.root,
      () => this.showAudioButton(),
      (source, added) => this.latency.agentSource(source, added),
    );
    this.room = new VoiceRoom({
      state: (state) => this.onState(state),
      agentAudio: (track, subscribed) =>
        subscribed ? this.audio.add(track) : this.audio.remove(track),
      micTrack: (track) => this.latency.setMic(track),
      line: (line) => this.onLine(line),
      playbackBlocked: (blocked) => {
        this.playbackBlocked = blocked;
        this.showAudioButton();
      },
      agentRole: (role, version, model) => this.onAgentRole(role, version, model),
      ended: () => {
        const why = this.endReason ? `: ${this.endReason}` : ".";
        showNotice(view, `The agent ended the session${why}`, "ended");
      },
    });

    // a role's `ui:` tools call these over RPC with {arguments, result?}
    this.panels = new Panels(view.panels, {
      ending: (reason) => {
        this.endReason = reason;
        this.room.expectEnd();
        const why = reason ? `: ${reason}` : ".";
        showNotice(view, `The agent is ending the session${why}`, "ending");
      },
    });
    // (each answers its caller, and tells it on TOPIC.ui what it showed)
    for (const [name, method] of Object.entries(this.panels.methods())) {
      this.room.serve(name, (payload, caller) =>
        method(payload, (report) => this.room.reportUi(caller, report)),
      );
    }

    view.connect.onclick = () => {
      const status = this.room.state.status;
      if (status === "connected" || status === "connecting") void this.room.disconnect();
      else void this.connect();
    };
    view.mic.onclick = () => void this.room.toggleMic();
    view.enableAudio.onclick = () => void this.enableAudio();
    view.send.onclick = () => this.sendTyped();
    view.input.onkeydown = (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        this.sendTyped();
      }
    };
    // JupyterLab matches its keyboard shortcuts from the focused element up; this stops
    // typing in the box from driving the notebook
    view.input.setAttribute("data-lm-suppress-shortcuts", "true");

    this.listen("msg:custom", (content) => this.command(content as Command));
    for (const key of ["role", "model_label", "room"]) {
      this.listen(`change:${key}`, () => this.showHeader());
    }
    this.showHeader();
    this.onState(this.room.state);
    this.measure();
    this.timers = [
      window.setInterval(() => this.measure(), MEASURE_MS),
      window.setInterval(() => this.flushTranscript(), TRANSCRIPT_MS),
    ];
  }

  connect(): Promise<void> {
    const { model } = this;
    this.endReason = "";
    showNotice(this.view, "");
    this.latency.reset();
    return this.room.connect(model.get("url"), model.get("token"), model.get("agent_timeout_s"));
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) window.clearInterval(timer);
    for (const dispose of this.disposers) dispose();
    this.room.close();
    this.panels.cancel("the voice client was closed");
    this.latency.close();
    this.audio.close();
    this.transcript.close();
    const { status, mic } = this.room.state;
    if (status !== "connected" && status !== "connecting") return;
    // tell Python this page left the room; a model closed along with its widget (the cell
    // re-run) can no longer sync, and then there is no one left to tell
    try {
      const left = { status: "disconnected", agent_state: "" } as const;
      this.onState({ ...this.room.state, ...left, mic: mic === "on" ? "off" : mic });
    } catch {
      // the model is closed
    }
  }

  private command(command: Command): void {
    if (command.type === "connect") void this.connect();
    else if (command.type === "disconnect") void this.room.disconnect();
    else if (command.type === "send_text") this.sendText(String(command.text));
  }

  private sendTyped(): void {
    const text = this.view.input.value.trim();
    if (text && this.sendText(text)) this.view.input.value = "";
  }

  /** Send a typed turn; it ends the user's turn, so the reply's latency counts from here. */
  private sendText(text: string): boolean {
    const sent = this.room.sendText(text);
    if (sent) this.latency.typed();
    return sent;
  }

  /** A reply was heard ``latencyS`` after the user's turn ended (at epoch ``endedAt``):
   * show it, tell the agent. */
  private onLatency(latencyS: number, after: After, endedAt: number): void {
    showLatency(this.view, latencyS, after, endedAt);
    this.room.reportLatency(latencyS, after, endedAt);
  }

  private async enableAudio(): Promise<void> {
    await Promise.all([this.room.startAudio(), this.audio.resume()]);
    this.showAudioButton();
  }

  private showAudioButton(): void {
    this.view.enableAudio.hidden = !(this.playbackBlocked || this.audio.blocked);
  }

  private showHeader(): void {
    const { model } = this;
    const label = this.agentModel || model.get("model_label");
    showHeader(this.view, model.get("role"), label, model.get("room"));
  }

  private onState(state: Readonly<LiveState>): void {
    // the agent starts to speak when its first audio frame of a reply leaves it, so this
    // arrives (over signalling) before that audio has come through WebRTC's jitter buffer
    if (state.agent_state !== this.agentState) {
      this.agentState = state.agent_state;
      if (state.agent_state === "speaking") this.latency.agentSpeaking();
    }
    let changed = false;
    for (const key of ["status", "agent_state", "mic", "error"] as const) {
      if (this.model.get(key) !== state[key]) {
        this.model.set(key, state[key]);
        changed = true;
      }
    }
    if (changed) this.model.save_changes();
    showState(this.view, state);
    if (state.status === "disconnected" || state.status === "error") {
      this.panels.cancel(message("left"));
    }
  }

  private onAgentRole(role: string, version: string, model: string): void {
    if (model && model !== this.agentModel) {
      this.agentModel = model;
      this.showHeader();
    }
    const { dataset } = this.view.root;
    if (dataset.role === role && dataset.roleVersion === version) return;
    showAgentRole(this.view, role, version);
    if (this.model.get("role_version") === version) return;
    this.model.set("role_version", version);
    this.model.save_changes();
  }

  private onLine(line: TranscriptLine): void {
    if (!this.transcript.upsert(line)) return;
    this.transcriptDirty = true;
    if (line.final) this.flushTranscript();
  }

  private flushTranscript(): void {
    if (!this.transcriptDirty) return;
    this.transcriptDirty = false;
    this.model.set("transcript", this.transcript.lines.map((line) => ({ ...line })));
    this.model.save_changes();
  }

  private measure(): void {
    this.audio.measure();
    const { peak, soundMs, level } = this.audio;
    showMeasures(this.view, { peak, soundMs, level, lines: this.transcript.lines.length });
  }

  private listen(event: string, callback: (...args: unknown[]) => void): void {
    this.model.on(event, callback);
    this.disposers.push(() => this.model.off(event, callback));
  }
}

const render: Render<VoiceClientState> = ({ model, el }) => {
  injectStyle(el);
  const view = buildView(el.ownerDocument);
  el.appendChild(view.root);
  const client = new VoiceClient(model, view);
  if (model.get("auto_connect")) void client.connect();
  return () => {
    client.close();
    view.root.remove();
  };
};

export default { render };
