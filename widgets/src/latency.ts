// Latency at the listener: for each agent reply, the time from the end of the user's turn
// (the last loud moment of the microphone, or the Enter of a typed message) to the first
// agent audio played in the page, reported to the agent on the data channel.
//
// Both signals are measured in one AudioWorklet, in the AudioContext that already measures
// the agent's audio (audio.ts): the published microphone track on its input 0, every agent
// track on its input 1. It takes the RMS of every FRAME_S frame (8 ms at 48 kHz) on the audio
// clock (AudioContext.currentTime), so both ends of a measurement share one clock, are
// sampled more often than every 10 ms and do not depend on the page's timers (a hidden tab
// throttles those, never the audio thread).

import { SOUND_RMS } from "./audio";

/** Microphone RMS (-34 dBFS) above which a frame is speech. The tests' fake-device WAV
 * (espeak-ng speech between digital silence), as Chromium's capture processing (gain control,
 * noise suppression) hands it to the page, measures 0.1-0.47 in its vowels, 0 before the
 * speech and 0.001-0.005 after it; its softest sounds dip below 0.02 for less than
 * TURN_END_QUIET_S. A quiet room at a microphone stays far below, speech well above. */
export const MIC_SPEECH_RMS = 0.02;
/** Frames this long (rounded down to whole 128-sample render quanta): at most 10 ms. */
const FRAME_S = 0.01;
/** Quiet this long after the last speech frame ends the user's turn (pauses between words
 * are shorter; a real reply never starts this soon after the user stops). */
const TURN_END_QUIET_S = 0.15;
/** Only for an agent that does not report its state: when it still spoke as the user's turn
 * ended, its reply is the first sound after at least this much quiet. */
const REPLY_GAP_S = 0.2;
/** While the agent is audible, and this long after, the microphone does not count: what it
 * hears then may be the agent through the speakers (echo), not the user. */
const ECHO_TAIL_S = 0.15;

export type After = "speech" | "text";

/** What the worklet posts, with times in seconds on the AudioContext's clock. */
type LevelEvent =
  | { type: "speech"; t: number } // the microphone became loud (a frame's start)
  | { type: "quiet"; t: number } // ...and the user's turn ended at t (the last loud frame's end)
  | { type: "agent"; t: number; quietSince: number }; // agent sound at t, after quiet

// The processor, as source text: a worklet module is loaded from a URL, here a blob: one.
const PROCESSOR = `
class RicoLevels extends AudioWorkletProcessor {
  constructor({ processorOptions: o }) {
    super();
    this.o = o;
    this.frame = Math.max(128, Math.floor((o.frameS * sampleRate) / 128) * 128);
    this.sums = [0, 0];
    this.count = 0;
    this.start = 0;
    this.speaking = false;
    this.micLastLoud = -Infinity;
    this.agentQuietSince = -Infinity; // null while the agent is audible
    this.agentLastLoud = -Infinity;
  }
  process(inputs) {
    if (this.count === 0) this.start = currentFrame / sampleRate;
    let n = 0;
    for (let i = 0; i < 2; i++) {
      const channels = inputs[i] || [];
      if (channels.length === 0) continue;
      let sum = 0;
      for (const channel of channels) for (const s of channel) sum += s * s;
      this.sums[i] += sum / channels.length;
      n = channels[0].length;
    }
    this.count += n || 128;
    if (this.count >= this.frame) this.evaluate();
    return true;
  }
  evaluate() {
    const o = this.o;
    const t0 = this.start, t1 = t0 + this.count / sampleRate;
    const mic = Math.sqrt(this.sums[0] / this.count);
    const agent = Math.sqrt(this.sums[1] / this.count);
    this.sums = [0, 0];
    this.count = 0;
    if (agent > o.agentRms) {
      if (this.agentQuietSince !== null) {
        this.port.postMessage({ type: "agent", t: t0, quietSince: this.agentQuietSince });
      }
      this.agentQuietSince = null;
      this.agentLastLoud = t1;
    } else if (this.agentQuietSince === null) {
      this.agentQuietSince = t0;
    }
    const echo = this.agentQuietSince === null || t0 - this.agentLastLoud < o.echoTailS;
    if (mic > o.micRms && !echo) {
      if (!this.speaking) this.port.postMessage({ type: "speech", t: t0 });
      this.speaking = true;
      this.micLastLoud = t1;
    } else if (this.speaking && t1 - this.micLastLoud >= o.turnEndQuietS) {
      this.speaking = false;
      this.port.postMessage({ type: "quiet", t: this.micLastLoud });
    }
  }
}
registerProcessor("rico-levels", RicoLevels);
`;

/** A user turn that ended at ``end`` (audio clock), waiting for the agent's reply. */
interface Pending {
  end: number;
  after: After;
  /** The audio-clock time at which the agent was seen to start a reply since; null: not yet. */
  replyAt: number | null;
}

/**
 * Arms at the end of each user turn and reports the start of the agent's reply, once: a
 * newer end (the user spoke or typed again before the agent answered) re-arms, and agent
 * audio that starts while the user is still speaking, or before the end, is not a reply.
 * Nothing arms before the greeting, so it is never reported.
 *
 * The agent may still be talking when the user's turn ends (a message typed while it speaks
 * interrupts it, a moment later), and goes on after a pause between words: that is not its
 * reply. A reply starts when the agent's state becomes "speaking", which livekit-agents sets
 * as the reply's first audio frame leaves it; the attribute comes over signalling, ahead of
 * the audio, which waits in WebRTC's jitter buffer (measured: 50-300 ms ahead). The reply's
 * onset is the first agent sound after that.
 */
export class ListenerLatency {
  private node: AudioWorkletNode | null = null;
  private loading: Promise<AudioWorkletNode | null> | null = null;
  private mic: MediaStreamAudioSourceNode | null = null;
  private readonly agents = new Set<AudioNode>();
  private armed: Pending | null = null;
  private speaking = false;
  /** The agent reports its state (livekit-agents does): replies are told by it. */
  private stateful = false;
  private closed = false;

  constructor(
    /** The AudioContext of the agent's audio, opened on demand; null once closed. */
    private readonly context: () => AudioContext | null,
    private readonly report: (latencyS: number, after: After) => void,
  ) {}

  /** The published microphone's track (null: none): measured from now on. */
  setMic(track: MediaStreamTrack | null): void {
    this.mic?.disconnect();
    this.mic = null;
    this.speaking = false;
    const context = this.context();
    if (!track || !context) return;
    // not connected to the destination: the user must not hear their own microphone
    this.mic = context.createMediaStreamSource(new MediaStream([track]));
    this.connect(this.mic, 0);
  }

  /** An agent track's source node (audio.ts plays and meters it) joins or leaves. */
  agentSource(source: AudioNode, added: boolean): void {
    if (added) {
      this.agents.add(source);
      this.connect(source, 1);
    } else if (this.agents.delete(source) && this.node) {
      try {
        source.disconnect(this.node);
      } catch {
        // it was not connected yet
      }
    }
  }

  /** A typed message was sent: the turn ends now. */
  typed(): void {
    const now = this.now();
    if (now !== null) this.armed = { end: now, after: "text", replyAt: null };
  }

  /** The agent's state became "speaking": a reply starts, its audio close behind. */
  agentSpeaking(): void {
    this.stateful = true;
    const now = this.now();
    if (this.armed && this.armed.replyAt === null && now !== null) this.armed.replyAt = now;
  }

  /** Forget a pending measurement (a new connection starts afresh). */
  reset(): void {
    this.armed = null;
    this.speaking = false;
    this.stateful = false;
  }

  close(): void {
    this.closed = true;
    this.mic?.disconnect();
    this.mic = null;
    this.agents.clear();
    if (this.node) this.node.port.onmessage = null;
    this.node?.disconnect();
    this.node = null;
  }

  /** The audio clock, if it runs: a suspended context's stands still, and measures nothing. */
  private now(): number | null {
    const context = this.context();
    return context?.state === "running" ? context.currentTime : null;
  }

  private onLevel(event: LevelEvent): void {
    if (event.type === "speech") {
      this.speaking = true;
      this.armed = null; // the end to measure from is the one still to come
    } else if (event.type === "quiet") {
      this.speaking = false;
      this.armed = { end: event.t, after: "speech", replyAt: null };
    } else {
      this.agentSound(event.t, event.quietSince);
    }
  }

  private agentSound(t: number, quietSince: number): void {
    const pending = this.armed;
    if (!pending || this.speaking || t <= pending.end) return;
    const reply = this.stateful
      ? pending.replyAt !== null && t >= pending.replyAt
      : // no agent state to go by: the first sound if the agent was quiet at the end, else
        // the first after a pause longer than those between words
        quietSince <= pending.end || t - quietSince >= REPLY_GAP_S;
    if (!reply) return;
    this.armed = null;
    this.report(t - pending.end, pending.after);
  }

  private connect(source: AudioNode, input: number): void {
    void this.load().then((node) => {
      // the source may have gone (or the client closed) while the module loaded
      const current = input === 0 ? this.mic === source : this.agents.has(source);
      if (node && current) source.connect(node, 0, input);
    });
  }

  private load(): Promise<AudioWorkletNode | null> {
    this.loading ??= this.open().catch((error: unknown) => {
      console.warn("rico_lab: no listener latency, the level worklet did not load:", error);
      return null;
    });
    return this.loading;
  }

  private async open(): Promise<AudioWorkletNode | null> {
    const context = this.context();
    if (!context) return null;
    const url = URL.createObjectURL(new Blob([PROCESSOR], { type: "text/javascript" }));
    try {
      await context.audioWorklet.addModule(url);
    } finally {
      URL.revokeObjectURL(url);
    }
    if (this.closed || context.state === "closed") return null;
    const node = new AudioWorkletNode(context, "rico-levels", {
      numberOfInputs: 2,
      numberOfOutputs: 0,
      processorOptions: {
        frameS: FRAME_S,
        micRms: MIC_SPEECH_RMS,
        agentRms: SOUND_RMS,
        turnEndQuietS: TURN_END_QUIET_S,
        echoTailS: ECHO_TAIL_S,
      },
    });
    node.port.onmessage = (message: MessageEvent<LevelEvent>) => this.onLevel(message.data);
    this.node = node;
    return node;
  }
}
