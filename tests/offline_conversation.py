"""Run by test_offline.py inside a network namespace with nothing but loopback.

A lab starts and holds a spoken conversation; every host name or address Python code tries
to reach is recorded, and any that is not loopback is reported (native code that tries is
stopped by the namespace itself).
"""

import ipaddress
import socket
import sys

reached: set[str] = set()
_getaddrinfo = socket.getaddrinfo


def _recording_getaddrinfo(host, *args, **kwargs):
    reached.add(str(host))
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _recording_getaddrinfo


def is_loopback(host: str) -> bool:
    if host in {"localhost", "None", ""}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> int:
    from rtc_participant import VoiceParticipant

    import rico_lab
    from rico_lab.local_model.speech import synthesize

    with rico_lab.Lab() as lab:
        p = VoiceParticipant(lab.join("demo"))
        p.connect()
        try:
            p.wait_for("the greeting", p.greeted)
            p.say(synthesize("Are you there?"), silence_after=1.5)
            p.wait_for("the reply", lambda: p.replied(1))
        finally:
            p.close()
    outside = sorted(h for h in reached if not is_loopback(h))
    print("OUTSIDE", outside, flush=True)
    return 1 if outside else 0


if __name__ == "__main__":
    sys.exit(main())
