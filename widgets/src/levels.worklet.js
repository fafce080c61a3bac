// The listener-latency level processor (latency.ts), an AudioWorklet module: the RMS of
// every frame of the microphone (input 0) and the agent's audio (input 1), on the audio clock.
// Bundled as text: a worklet module is loaded from a URL, here a blob: one.

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
