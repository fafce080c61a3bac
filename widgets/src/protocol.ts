// The participant-attribute and topic keys the agent and its clients share, written once in
// rico_lab/protocol.json, which rico_lab/protocol.py reads too.

import keys from "../../rico_lab/protocol.json";

/** Participant attributes: what the agent says (role, version, model, errors, state), and
 * livekit-agents' own transcription-stream attributes. */
export const ATTRIBUTE: Readonly<Record<keyof typeof keys.attributes, string>> = keys.attributes;
/** Text-stream and data-channel topics. */
export const TOPIC: Readonly<Record<keyof typeof keys.topics, string>> = keys.topics;
