"""Twilio's side of Media Streams (``MediaStreamClient``, the simulator's codec) against the
bot's (``MediaStreamProtocol``): every message one writes, the other reads back as sent,
with no violation counted on either side, and the bot's fast media path takes the client's
media messages."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.carriers.twilio import media_stream as tp
from bot.carriers.twilio.media_client import MediaStreamClient

SID, CALL, ACCOUNT = "MZ" + "1" * 32, "CA" + "2" * 32, "AC" + "3" * 32


def pair(custom: dict[str, str] | None = None) -> tuple[MediaStreamClient, tp.MediaStreamProtocol, tp.Start]:
    client, bot = MediaStreamClient(SID, CALL, ACCOUNT), tp.MediaStreamProtocol()
    assert bot.receive(client.connected()) == tp.Connected("Call", "1.0.0")
    start = bot.receive(client.start(custom))
    assert isinstance(start, tp.Start)
    return client, bot, start


def test_start_carries_the_ids_and_parameters():
    _, bot, start = pair({"token": "123.abc", "caller": "+15551234567"})
    assert (start.stream_sid, start.call_sid, start.account_sid) == (SID, CALL, ACCOUNT)
    assert start.custom_parameters == {"token": "123.abc", "caller": "+15551234567"}
    assert start.media_format == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert bot.state is tp.State.STARTED and bot.stats == {}


def test_a_call_both_ways_round_trips_with_no_violation():
    rng = random.Random(7)
    client, bot, _ = pair()
    frames = [bytes(rng.randrange(256) for _ in range(160)) for _ in range(200)]
    got = [bot.receive(client.media(f)) for f in frames]
    assert [m.payload for m in got if isinstance(m, tp.Media)] == frames
    assert [m.sequence for m in got if isinstance(m, tp.Media)] == list(range(2, 202))  # start was 1
    assert [m.chunk for m in got if isinstance(m, tp.Media)] == list(range(1, 201))
    assert [bot.receive(client.dtmf(d)) for d in "0123456789*#"] == [tp.Dtmf(d) for d in "0123456789*#"]
    assert bot.receive(client.mark('quote " and \\ and é')) == tp.Mark('quote " and \\ and é')
    # the bot's messages, read by the client as it sent them
    reply = bytes(range(256)) * 3  # larger than a frame: the bot joins frames (MEDIA_FRAMES_PER_MESSAGE)
    assert client.receive(bot.send_media(reply)) == tp.Media(reply)
    assert client.receive(bot.send_mark("t1s1")) == tp.Mark("t1s1")
    assert client.receive(bot.send_clear()) == tp.Clear()
    assert bot.receive(client.stop()) == tp.Stop(CALL)
    assert bot.stats == {} and client.stats == {}  # no gap: the client numbered every message


def test_client_media_takes_the_bots_fast_path():
    client, bot, _ = pair()
    text = client.media(b"\xff" * 160)
    assert bot._fast_media(text) is not None  # noqa: SLF001 - the fast path is what 50 messages a second take
    assert json.loads(text)["media"]["track"] == "inbound"


@pytest.mark.parametrize(("text", "reason"), [
    ("not json", "not_json"),
    ("[1]", "not_object"),
    (json.dumps({"event": "media", "streamSid": "MZ" + "9" * 32, "media": {"payload": ""}}), "wrong_stream"),
    (json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "@@@"}}), "bad_base64"),
    (json.dumps({"event": "media", "streamSid": SID}), "missing_field"),
    (json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": 5}}), "bad_type"),
    (json.dumps({"event": "hello", "streamSid": SID}), "unknown_event"),
])
def test_the_client_counts_what_the_bot_must_not_send(text, reason):
    client = MediaStreamClient(SID, CALL)
    assert client.receive(text) is None and client.stats == {reason: 1}


def test_a_bad_digit_is_our_own_misuse():
    with pytest.raises(tp.ProtocolError):
        MediaStreamClient(SID, CALL).dtmf("x")


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=160).map(lambda b: ("media", b)), st.text(max_size=40).map(lambda t: ("mark", t)),
                          st.sampled_from(sorted(tp.DIGITS)).map(lambda d: ("dtmf", d))), max_size=30))
def test_any_sequence_of_client_messages_reads_back(steps):
    client, bot, _ = pair()
    for kind, value in steps:
        ev = bot.receive(getattr(client, kind)(value))
        if kind == "media":
            assert isinstance(ev, tp.Media) and ev.payload == value and ev.sequence == client.seq and ev.chunk == client.chunk
        else:
            assert ev == (tp.Mark(value) if kind == "mark" else tp.Dtmf(value))
    assert bot.stats == {}
