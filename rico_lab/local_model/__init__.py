"""The local realtime model: an OpenAI Realtime stand-in on loopback, scripted, with VAD."""
