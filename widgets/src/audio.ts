// Agent audio: played through an <audio> element, and measured with a WebAudio analyser
// that drives the level meter and records how much non-silent audio was really played.

import type { RemoteAudioTrack } from "livekit-client";

/** RMS (0..1) above which a frame counts as sound, not silence or comfort noise. */
const SOUND_RMS = 0.01;

export class AgentAudio {
  peak = 0;
  soundMs = 0;
  private context: AudioContext | null = null;
  private timer: number | undefined;
  private elements: HTMLMediaElement[] = [];

  constructor(
    private readonly host: HTMLElement,
    private readonly meter: HTMLElement,
  ) {}

  /** Play ``track`` and start measuring it. */
  play(track: RemoteAudioTrack): void {
    const element = track.attach();
    element.style.display = "none";
    this.host.appendChild(element);
    this.elements.push(element);
    this.context ??= new AudioContext();
    void this.context.resume();
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 1024;
    this.context.createMediaStreamSource(new MediaStream([track.mediaStreamTrack])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let last = performance.now();
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      const now = performance.now();
      if (rms > SOUND_RMS) this.soundMs += now - last;
      last = now;
      this.peak = Math.max(this.peak, rms);
      this.meter.style.width = `${Math.min(100, rms * 400)}%`;
    }, 50);
  }

  /** Resume playback after a click, where autoplay was blocked. */
  async resume(): Promise<void> {
    await this.context?.resume();
  }

  close(): void {
    window.clearInterval(this.timer);
    for (const element of this.elements) element.remove();
    this.elements = [];
    void this.context?.close();
    this.context = null;
  }
}
