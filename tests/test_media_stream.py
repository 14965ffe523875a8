"""The Media Streams object's per-frame fast paths say exactly what the general ones say:
a recognised media message gives the same event and counts as the same message parsed by
json.loads, and outgoing text is what json.dumps would write."""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.carriers.twilio import media_stream as tp

SID = "MZ" + "a" * 32
OTHER = "MZ" + "b" * 32
CALL = "CA" + "b" * 32
FUZZ = hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def started() -> tp.MediaStreamProtocol:
    p = tp.MediaStreamProtocol()
    start = {"event": "start", "sequenceNumber": "1", "streamSid": SID,
             "start": {"accountSid": "AC" + "c" * 32, "callSid": CALL, "streamSid": SID, "tracks": ["inbound"]}}
    assert isinstance(p.receive(json.dumps(start)), tp.Start)
    return p


def media_text(seq: str, sid: str | None, track: str, payload: str, sid_last: bool, compact: bool, chunk: str = "1") -> str:
    """A media message in Twilio's key order, streamSid before or after "media" (or absent)."""
    sep = (",", ":") if compact else (", ", ": ")
    head = {"event": "media", "sequenceNumber": seq}
    media = {"media": {"track": track, "chunk": chunk, "timestamp": "20", "payload": payload}}
    tail = {} if sid is None else {"streamSid": sid}
    return json.dumps({**head, **media, **tail} if sid_last else {**head, **tail, **media}, separators=sep)


def general(text: str) -> str:
    """The same JSON value, spelled so the fast pattern cannot match: the general path."""
    return " " + text


def both(texts: list[str]):
    fast, slow = started(), started()
    out_fast = [fast.receive(t) for t in texts]
    out_slow = [slow.receive(general(t)) for t in texts]
    return (out_fast, fast.stats, fast.state), (out_slow, slow.stats, slow.state)


payload_bytes = st.binary(min_size=0, max_size=170)
payload_text = payload_bytes.map(lambda b: base64.b64encode(b).decode()) | st.text(
    alphabet='ABCDEFGHab01+/="\\\u00e9\n', max_size=230) | st.sampled_from(["", "=", "AAA", "AA==AA==", "/w==", "@@@@"])


@FUZZ
@given(st.lists(st.tuples(
    st.sampled_from(["2", "3", "5", "0", "000000000007", "9999999999999", "x"]),
    st.sampled_from([SID, OTHER, "", None, "MZ" + "A" * 32]),
    st.sampled_from(["inbound", "inbound_track", "outbound", "inbound "]),
    payload_text, st.booleans(), st.booleans(),
), min_size=1, max_size=6))
def test_fast_and_general_paths_agree(msgs):
    texts = [media_text(*m) for m in msgs]
    assert both(texts)[0] == both(texts)[1]


def test_twilio_messages_take_the_fast_path_and_give_the_audio():
    p = started()
    audio = bytes(range(160))
    text = media_text("2", SID, "inbound", base64.b64encode(audio).decode(), True, True)
    assert started()._fast_media(text) == tp.Media(audio, 20, 1, 2)  # the recognised shape
    ev = p.receive(text)
    assert ev == tp.Media(audio, 20, 1, 2)
    ev = p.receive(media_text("5", None, "inbound", base64.b64encode(audio).decode(), False, False))
    assert ev == tp.Media(audio, 20, 1, 5) and p.stats == {"gaps": 2}


def test_what_the_fast_path_matches_but_refuses_is_counted_by_the_general_one():
    cases = {
        "wrong_stream": media_text("2", OTHER, "inbound", "/w==", True, True),
        "bad_base64": media_text("2", SID, "inbound", "A=A=", True, True),
        "too_large_payload": media_text("2", SID, "inbound", base64.b64encode(b"\xff" * 161).decode(), True, True),
    }
    for reason, text in cases.items():
        assert tp._FAST_HEAD.match(text) is not None, reason
        p = started()
        assert p.receive(text) is None
        assert p.stats == {reason: 1}
    # a streamSid both before and after "media": json.loads keeps the last one
    for first, last in ((OTHER, SID), (SID, OTHER), (SID, SID)):
        twice = ('{"event":"media","sequenceNumber":"2","streamSid":"' + first + '","media":{"track":"inbound",'
                 '"chunk":"1","timestamp":"20","payload":"/w=="},"streamSid":"' + last + '"}')
        assert tp._FAST_HEAD.match(twice) is not None
        assert both([twice])[0] == both([twice])[1]
    assert both([twice])[0][0] == [tp.Media(b"\xff", 20, 1, 2)]


def test_media_before_start_and_after_stop_are_counted_as_before():
    text = media_text("2", SID, "inbound", "/w==", True, True)
    p = tp.MediaStreamProtocol()
    assert p.receive(text) is None and p.stats == {"before_start": 1}
    p = started()
    assert isinstance(p.receive(json.dumps({"event": "stop", "streamSid": SID, "stop": {"callSid": CALL}})), tp.Stop)
    assert p.receive(text) is None and p.stats == {"after_stop": 1}


@given(st.binary(max_size=400), st.text(max_size=60))
@FUZZ
def test_outgoing_text_is_what_json_dumps_writes(audio, name):
    p = started()
    c = (",", ":")
    assert p.send_media(audio) == json.dumps(
        {"event": "media", "streamSid": SID, "media": {"payload": base64.b64encode(audio).decode()}}, separators=c)
    assert p.send_mark(name) == json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": name}}, separators=c)
    assert p.send_clear() == json.dumps({"event": "clear", "streamSid": SID}, separators=c)
