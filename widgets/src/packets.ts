// The microphone's Opus packets: 10 ms instead of libwebrtc's 20. The user's last word
// leaves the browser only once its packet is full, and the agent's receiver holds about two
// packets in its jitter buffer before it plays them; with 10 ms packets both wait less (in
// the browser benchmark the user's audio reached the model some 20 ms sooner, for any
// worker: docs/performance.md). Chromium sends the packet length the answer to its offer
// asks for (`a=ptime`); livekit-server's answers ask for none, and livekit-client has no
// option for it, so this client adds the line to each answer before livekit-client sets it.
// livekit-client is bundled into this module: the patch reaches this bundle's rooms only,
// never another RTCPeerConnection on the page.

import type { Room } from "livekit-client";

/** The microphone's packet length in ms (Opus has 2.5, 5, 10, 20, 40 and 60). */
export const MIC_PACKET_MS = 10;

/** `sdp` with `a=ptime:ms` in each audio section that asks for no packet length. */
export function withPacketTime(sdp: string, ms: number): string {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const lines = sdp.split(eol);
  const ended = lines[lines.length - 1] === "";
  if (ended) lines.pop();
  const out: string[] = [];
  let audio = false;
  let asked = false;
  const close = (): void => {
    if (audio && !asked) out.push(`a=ptime:${ms}`);
  };
  for (const line of lines) {
    if (line.startsWith("m=")) {
      close();
      audio = line.startsWith("m=audio");
      asked = false;
    } else if (line.startsWith("a=ptime:")) {
      asked = true;
    }
    out.push(line);
  }
  close();
  return out.join(eol) + (ended ? eol : "");
}

interface Transport {
  setRemoteDescription(sd: RTCSessionDescriptionInit, offerId: number): Promise<boolean>;
}

const patched = new WeakSet<Transport>();

/**
 * Have every answer `room`'s transports set ask for MIC_PACKET_MS packets. Call it once the
 * room has joined and before the microphone is published: the transports exist then, and
 * the answer to the microphone's offer is the first that counts. Their class is patched, so
 * the transports of a later reconnection ask too.
 */
export function askForShortMicPackets(room: Room): void {
  const transport = room.engine?.pcManager?.publisher as Transport | undefined;
  if (!transport) return;
  const transports = Object.getPrototypeOf(transport) as Transport;
  if (patched.has(transports)) return;
  patched.add(transports);
  const set = transports.setRemoteDescription;
  transports.setRemoteDescription = function (this: Transport, sd, offerId) {
    const asked = sd.type === "answer" && sd.sdp ? withPacketTime(sd.sdp, MIC_PACKET_MS) : sd.sdp;
    return set.call(this, { ...sd, sdp: asked }, offerId);
  };
}
