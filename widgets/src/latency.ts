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
// the processor, as source text: a worklet module is loaded from a URL, here a blob: one
import PROCESSOR from "./levels.worklet.js";

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
export type LevelEvent =
  | { type: "speech"; t: number } // the microphone became loud (a frame's start)
  | { type: "quiet"; t: number } // ...and the user's turn ended at t (the last loud frame's end)
  | { type: "agent"; t: number; quietSince: number }; // agent sound at t, after quiet

/** A reply heard ``latencyS`` after the end of the user's turn, which ended ``after``, at
 * ``end`` on the audio clock. */
export interface Heard {
  latencyS: number;
  after: After;
  end: number;
}

/** A user turn that ended at ``end`` (audio clock), waiting for the agent's reply. */
interface Pending {
  end: number;
  after: After;
  /** The audio-clock time at which the agent was seen to start a reply since; null: not yet. */
  replyAt: number | null;
}

/**
 * The measurement, apart from the audio graph (times on the audio clock): arms at the end of
 * each user turn and tells the start of the agent's reply, once. A newer end (the user spoke
 * or typed again before the agent answered) re-arms, and agent audio that starts while the
 * user is still speaking, or before the end, is not a reply. Nothing arms before the
 * greeting, so it is never reported.
 *
 * The agent may still be talking when the user's turn ends (a message typed while it speaks
 * interrupts it, a moment later), and goes on after a pause between words: that is not its
 * reply. A reply starts when the agent's state becomes "speaking", which livekit-agents sets
 * as the reply's first audio frame leaves it; the attribute comes over signalling, ahead of
 * the audio, which waits in WebRTC's jitter buffer (measured: 50-300 ms ahead). The reply's
 * onset is the first agent sound after that.
 */
export class ReplyTimer {
  private armed: Pending | null = null;
  private speaking = false;
  /** The agent reports its state (livekit-agents does): replies are told by it. */
  private stateful = false;

  /** A typed message was sent at ``now``: the turn ends then. */
  typed(now: number): void {
    this.armed = { end: now, after: "text", replyAt: null };
  }

  /** The agent's state became "speaking" at ``now`` (null: the audio clock stands still). */
  agentSpeaking(now: number | null): void {
    this.stateful = true;
    if (this.armed && this.armed.replyAt === null && now !== null) this.armed.replyAt = now;
  }

  /** Another microphone (or none) is measured: the user is not speaking into it yet. */
  newMic(): void {
    this.speaking = false;
  }

  /** Forget a pending measurement (a new connection starts afresh). */
  reset(): void {
    this.armed = null;
    this.speaking = false;
    this.stateful = false;
  }

  /** What the worklet saw; the reply it completes, if it does. */
  level(event: LevelEvent): Heard | null {
    if (event.type === "speech") {
      this.speaking = true;
      this.armed = null; // the end to measure from is the one still to come
    } else if (event.type === "quiet") {
      this.speaking = false;
      this.armed = { end: event.t, after: "speech", replyAt: null };
    } else {
      return this.agentSound(event.t, event.quietSince);
    }
    return null;
  }

  private agentSound(t: number, quietSince: number): Heard | null {
    const pending = this.armed;
    if (!pending || this.speaking || t <= pending.end) return null;
    const reply = this.stateful
      ? pending.replyAt !== null && t >= pending.replyAt
      : // no agent state to go by: the first sound if the agent was quiet at the end, else
        // the first after a pause longer than those between words
        quietSince <= pending.end || t - quietSince >= REPLY_GAP_S;
    if (!reply) return null;
    this.armed = null;
    return { latencyS: t - pending.end, after: pending.after, end: pending.end };
  }
}

/**
 * Measures each reply's latency at the listener in the level worklet and reports it: the
 * audio graph around a :class:`ReplyTimer`.
 */
export class ListenerLatency {
  private node: AudioWorkletNode | null = null;
  private loading: Promise<AudioWorkletNode | null> | null = null;
  private mic: MediaStreamAudioSourceNode | null = null;
  private readonly agents = new Set<AudioNode>();
  private readonly timer = new ReplyTimer();
  private closed = false;

  constructor(
    /** The AudioContext of the agent's audio, opened on demand; null once closed. */
    private readonly context: () => AudioContext | null,
    /** ``endedAt``: when the user's turn ended, in epoch seconds (the page's clock). */
    private readonly report: (latencyS: number, after: After, endedAt: number) => void,
  ) {}

  /** The published microphone's track (null: none): measured from now on. */
  setMic(track: MediaStreamTrack | null): void {
    this.mic?.disconnect();
    this.mic = null;
    this.timer.newMic();
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
    if (now !== null) this.timer.typed(now);
  }

  /** The agent's state became "speaking": a reply starts, its audio close behind. */
  agentSpeaking(): void {
    this.timer.agentSpeaking(this.now());
  }

  /** Forget a pending measurement (a new connection starts afresh). */
  reset(): void {
    this.timer.reset();
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
    const heard = this.timer.level(event);
    const context = this.context();
    if (!heard || !context) return;
    // the audio clock read against the page's, now: a few ms after the worklet's frame,
    // close enough to line the turn up with what the agent and the model logged
    const endedAt = (performance.timeOrigin + performance.now()) / 1000;
    this.report(heard.latencyS, heard.after, endedAt - (context.currentTime - heard.end));
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
