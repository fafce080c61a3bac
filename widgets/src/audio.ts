// Agent audio: each track plays through its own <audio> element (LiveKit's attach()) and is
// also fed to a WebAudio analyser, which drives the level meter and measures how much
// non-silent agent audio was really played (the browser tests read that). The same sources
// feed the listener-latency worklet (latency.ts), which shares this AudioContext and its clock.

import type { RemoteAudioTrack } from "livekit-client";

/** RMS (0..1) above which a frame counts as sound rather than silence or comfort noise. */
export const SOUND_RMS = 0.01;
/** 2048 samples is ~43 ms at 48 kHz: about one measuring tick, so ticks miss little audio. */
const WINDOW = 2048;
/** Longest gap (s) one tick may account for: a throttled timer must not extrapolate far. */
const MAX_TICK_S = 0.25;

interface Playing {
  element: HTMLMediaElement;
  source: MediaStreamAudioSourceNode;
  analyser: AnalyserNode;
}

export class AgentAudio {
  /** Highest RMS seen so far. */
  peak = 0;
  /** Milliseconds of played agent audio whose RMS was above SOUND_RMS. */
  soundMs = 0;
  /** RMS of the latest tick, for the meter. */
  level = 0;
  private context: AudioContext | null = null;
  private readonly playing = new Map<RemoteAudioTrack, Playing>();
  private readonly samples = new Float32Array(WINDOW);
  private lastTime = 0;

  /**
   * ``onStateChange`` hears when playback becomes blocked or allowed; ``onSource`` gets each
   * agent track's source node when it is added and removed, to measure it some other way.
   */
  constructor(
    private readonly host: HTMLElement,
    private readonly onStateChange: () => void,
    private readonly onSource: (source: AudioNode, added: boolean) => void = () => undefined,
  ) {}

  /** The AudioContext that plays and measures agent audio, opened on first use. */
  get audioContext(): AudioContext {
    return this.context ?? this.open();
  }

  /** True while the browser keeps audio suspended until a click (autoplay policy). */
  get blocked(): boolean {
    return this.context?.state === "suspended";
  }

  add(track: RemoteAudioTrack): void {
    if (this.playing.has(track)) return;
    const element = track.attach();
    element.hidden = true;
    this.host.appendChild(element);
    const context = this.context ?? this.open();
    // an <audio> element plays the track; the analyser only listens, so it is not wired
    // to the destination (the agent would be heard twice)
    const source = context.createMediaStreamSource(new MediaStream([track.mediaStreamTrack]));
    const analyser = context.createAnalyser();
    analyser.fftSize = WINDOW;
    source.connect(analyser);
    this.playing.set(track, { element, source, analyser });
    this.onSource(source, true);
  }

  remove(track: RemoteAudioTrack): void {
    const playing = this.playing.get(track);
    if (!playing) return;
    this.playing.delete(track);
    track.detach(playing.element);
    playing.element.remove();
    this.onSource(playing.source, false);
    playing.source.disconnect();
  }

  /** Take one measurement (every ~50 ms) by the audio clock: suspended counts nothing. */
  measure(): void {
    const context = this.context;
    if (!context || context.state !== "running") {
      this.level = 0;
      return;
    }
    const elapsed = Math.min(MAX_TICK_S, context.currentTime - this.lastTime);
    this.lastTime = context.currentTime;
    let level = 0;
    for (const { analyser } of this.playing.values()) {
      analyser.getFloatTimeDomainData(this.samples);
      level = Math.max(level, rms(this.samples));
    }
    this.level = level;
    this.peak = Math.max(this.peak, level);
    if (level > SOUND_RMS) this.soundMs += elapsed * 1000;
  }

  async resume(): Promise<void> {
    await this.context?.resume();
  }

  close(): void {
    for (const track of [...this.playing.keys()]) this.remove(track);
    if (this.context) this.context.onstatechange = null;
    void this.context?.close();
    this.context = null;
  }

  private open(): AudioContext {
    const context = new AudioContext();
    context.onstatechange = () => {
      this.lastTime = context.currentTime;
      this.onStateChange();
    };
    this.lastTime = context.currentTime;
    this.context = context;
    // allowed when the page has had a click (running the cell counts); else the button asks
    void context.resume().catch(() => undefined);
    return context;
  }
}

function rms(samples: Float32Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / samples.length);
}
