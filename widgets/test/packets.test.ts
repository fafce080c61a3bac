// The answer's packet length: every audio section asks for MIC_PACKET_MS, nothing else moves.

import assert from "node:assert/strict";
import { test } from "node:test";

import { MIC_PACKET_MS, withPacketTime } from "../src/packets";

const ANSWER = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111 63",
  "c=IN IP4 0.0.0.0",
  "a=rtpmap:111 opus/48000/2",
  "a=fmtp:111 minptime=10;useinbandfec=1",
  "m=video 9 UDP/TLS/RTP/SAVPF 96",
  "a=rtpmap:96 VP8/90000",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=ptime:40",
  "a=rtpmap:111 opus/48000/2",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=rtpmap:111 opus/48000/2",
  "",
].join("\r\n");

test("each audio section without a packet length asks for one, at its end", () => {
  const sections = withPacketTime(ANSWER, MIC_PACKET_MS).split("\r\nm=");
  assert.equal(MIC_PACKET_MS, 10);
  assert.deepEqual(
    sections.map((s) => s.split("\r\n").filter((l) => l.startsWith("a=ptime:"))),
    [[], ["a=ptime:10"], [], ["a=ptime:40"], [], ["a=ptime:10"]],
  );
  assert.ok(sections[1].endsWith("a=fmtp:111 minptime=10;useinbandfec=1\r\na=ptime:10"));
});

test("the rest of the answer is left as it was, line ends included", () => {
  const asked = withPacketTime(ANSWER, 10);
  assert.equal(asked.split("\r\na=ptime:10").join(""), ANSWER);
  assert.ok(asked.endsWith("a=ptime:10\r\n"));
  const unix = ANSWER.split("\r\n").join("\n");
  assert.equal(withPacketTime(unix, 10), asked.split("\r\n").join("\n"));
  assert.equal(withPacketTime("v=0\r\nm=video 9 X 96\r\n", 10), "v=0\r\nm=video 9 X 96\r\n");
});
