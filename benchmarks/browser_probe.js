// Measures what the browser receives and shows, independent of the voice client's own code:
// added to a page before its scripts (Playwright's add_init_script) by the browser benchmarks.
//
// - every remote audio track of every RTCPeerConnection is metered in an AudioWorklet of a
//   context of its own: one RMS per 8 ms frame, timed on the audio clock (the audio thread,
//   which page-side stalls do not delay) and mapped to performance.now() (levels: [ms, rms,
//   track number]);
// - while `polling` is set, every 10 ms, the inbound audio concealment counters (stats: [ms,
//   concealed samples, silent concealed samples]);
// - the first time a panel of the voice client shows "probe-N" (shown: {N: epoch ms}).
(() => {
  const probe = { levels: [], stats: [], shown: {}, polling: false, tracks: 0 };
  window.__ricoProbe = probe;

  const PROCESSOR = `
    class ProbeLevels extends AudioWorkletProcessor {
      constructor() { super(); this.sum = 0; this.n = 0; this.start = 0; }
      process(inputs) {
        const channels = inputs[0] || [];
        if (this.n === 0) this.start = currentFrame / sampleRate;
        for (const c of channels.slice(0, 1)) for (const s of c) this.sum += s * s;
        this.n += 128;
        if (this.n >= 384) {  // 8 ms at 48 kHz: three render quanta
          this.port.postMessage([this.start, Math.sqrt(this.sum / this.n)]);
          this.sum = 0; this.n = 0;
        }
        return true;
      }
    }
    registerProcessor("probe-levels", ProbeLevels);`;
  let context = null;
  let loaded = null;

  async function meter(track) {
    context ??= new AudioContext();
    loaded ??= context.audioWorklet.addModule(
      URL.createObjectURL(new Blob([PROCESSOR], { type: "text/javascript" })),
    );
    await loaded;
    if (context.state !== "running") await context.resume();
    const node = new AudioWorkletNode(context, "probe-levels", { numberOfOutputs: 0 });
    const index = probe.tracks++;
    node.port.onmessage = ({ data: [t, rms] }) => {
      const stamp = context.getOutputTimestamp();
      probe.levels.push([stamp.performanceTime + (t - stamp.contextTime) * 1000, rms, index]);
    };
    context.createMediaStreamSource(new MediaStream([track])).connect(node);
  }

  const connections = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      connections.push(this);
      this.addEventListener("track", ({ track }) => {
        if (track.kind === "audio") void meter(track);
      });
    }
  };

  setInterval(async () => {
    if (!probe.polling) return;
    for (const pc of connections) {
      if (pc.connectionState === "closed") continue;
      const report = await pc.getStats();
      const now = performance.now();
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") {
          probe.stats.push([now, s.concealedSamples, s.silentConcealedSamples]);
        }
      });
    }
  }, 10);

  // only panels count: the transcript shows the typed turn that asks for one at once
  const seen = (node) => {
    const element = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
    if (!element) return;
    const inside = element.closest(".rico-panel");
    const panels = inside ? [inside] : element.querySelectorAll(".rico-panel");
    for (const panel of panels) {
      for (const match of panel.textContent.matchAll(/probe-(\d+)/g)) {
        probe.shown[match[1]] ??= performance.timeOrigin + performance.now();
      }
    }
  };
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) seen(node);
      if (record.type === "characterData") seen(record.target);
    }
  }).observe(document, { childList: true, subtree: true, characterData: true });
})();
