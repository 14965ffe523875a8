"""An adaptive jitter buffer for 8 kHz G.711, sans I/O: packets in (any time), one 20 ms
frame out per ``tick`` (the media clock's 20 ms).

It holds ``target`` frames before playing (2 = 40 ms, enough on a LAN). The target follows
the network: once a second it becomes the 95th percentile of how late packets came in the
last 10 s (each against the fastest of the 2 s before it, so clock drift is not jitter) plus one frame, up to ``max_frames`` (10 = 200 ms, an
internet path); it rises at once (a late packet, one that came after its slot was played,
also raises it by a frame) and falls a frame a second. Every 2 s the least depth seen is
compared with the target and the excess dropped, so a delay built up by a spike (or a late
first packet) does not stay (bench.rtp_jitter runs it on simulated networks). Reordered
packets are slotted by their timestamp, duplicates dropped, a lost frame concealed by repeating the last one once and
silence after that. A talk spurt's first packet (marker bit) or a timestamp out of the window
re-anchors the playout. Once started the buffer always yields a frame, silence when it has
none: the engine's timers count inbound frames, so a caller whose phone stops sending during
silence (DTX, comfort noise) still ends a turn. Payloads of any length (10, 20, 30 ms ...)
are cut into 20 ms frames by timestamp.
"""

from __future__ import annotations

import math
from collections import deque

FRAME = 160  # samples (= mu-law bytes) per 20 ms
HISTORY = 500  # packets (10 s) of arrival history for the delay estimate
BASELINE = 100  # packets (2 s): lateness is measured against the fastest of these
ESTIMATE_EVERY = 50  # packets between estimates (once a second)
QUANTILE = 0.95  # the target holds this share of packets' lateness (the rest is concealed)
WINDOW_TICKS = 100  # every 2 s, buffered audio beyond the target (the least depth seen) is dropped
MAX_PACKET = FRAME * 12  # 240 ms: more in one packet is no phone's (ptime tops out at 120-150 ms)
IDLE_TICKS = 10  # 200 ms of nothing to play: the next packet re-anchors


class JitterBuffer:
    def __init__(self, *, min_frames: int = 2, max_frames: int = 10, silence: int = 0xFF) -> None:
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.target = min_frames
        self.silence = bytes([silence]) * FRAME
        self._frames: dict[int, bytes] = {}  # extended timestamp of a frame -> 160 bytes
        self._partial: dict[int, bytearray] = {}  # frames filled by short packets, not complete yet
        self._next: int | None = None  # extended timestamp of the frame to play next
        self._last_ts: int | None = None  # extended timestamp of the newest packet (unwraps the 32 bits)
        self._wait = 0  # ticks still to hold before playing (building the target depth)
        self._empty = 0  # consecutive ticks with nothing to play
        self._ticks = 0  # ticks since the start: the arrival clock
        self._hist: deque[float] = deque(maxlen=HISTORY)  # each packet's lateness, in frames
        self._since_estimate = 0
        self._arrivals = 0
        self._fastest: deque[tuple[int, float]] = deque()  # a sliding minimum of r (monotonic queue)
        self._last: bytes | None = None  # the last frame played (for concealment)
        self._concealed_run = 0
        self.started = False
        self.played = 0
        self.concealed = 0
        self.late = 0
        self.duplicates = 0
        self.dropped = 0  # frames dropped to shrink the delay or after a burst
        self.resyncs = 0
        self.anchors = 0
        self._window = 0
        self._min_depth = 1 << 30

    def _extend(self, ts: int) -> int:
        if self._last_ts is None:
            self._last_ts = ts
            return ts
        d = ((ts - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        ext = self._last_ts + d
        if d > 0:
            self._last_ts = ext
        return ext

    def reset(self) -> None:
        """A new stream (SSRC change): forget the timeline, keep the statistics."""
        self._frames.clear()
        self._partial.clear()
        self._next = self._last_ts = None
        self._empty = 0

    def push(self, timestamp: int, payload: bytes, marker: bool = False) -> None:
        if not payload or len(payload) > MAX_PACKET:
            self.dropped += bool(payload)
            return
        ts = self._extend(timestamp)
        nxt = self._next
        idle = not self._frames and (self._empty >= IDLE_TICKS or nxt is None)
        if nxt is None or idle:
            self._anchor(ts)  # the first packet, or the stream resumed after a long silence
        elif ts + len(payload) <= nxt:
            if nxt - ts > 8000:  # a second behind: the sender's clock jumped back
                self._resync(ts)
            else:
                self.late += 1
                self._arrived(ts)
                if self.target < self.max_frames:  # fast attack; the estimate brings it back down
                    self.target += 1
                    self._wait += 1  # hold one tick so the depth grows to the new target
                return
        elif ts - nxt > FRAME * self.max_frames * 4:  # far ahead: a jump with no marker
            self._resync(ts)
        elif marker and not self._frames:
            self._anchor(ts)  # a new talk spurt: give it the build-up again
        self._arrived(ts)
        self._store(ts, payload)

    def _arrived(self, ts: int) -> None:
        """Arrival history: how late each packet came relative to the fastest of the last 10 s;
        once a second the target becomes the 95th percentile of that lateness plus one frame
        (rising at once, falling one frame a second)."""
        r = self._ticks - ts / FRAME  # arrival tick minus frame index: constant on a perfect network
        n = self._arrivals = self._arrivals + 1
        fast = self._fastest  # (arrival number, r), r increasing: the least r of the last BASELINE packets at [0]
        while fast and fast[-1][1] >= r:
            fast.pop()
        fast.append((n, r))
        if fast[0][0] <= n - BASELINE:
            fast.popleft()
        # lateness against the fastest packet of the last 2 s, not of 10 s: a sender whose clock
        # runs slow would otherwise look like 10 s of drift worth of jitter
        self._hist.append(r - fast[0][1])
        self._since_estimate += 1
        if self._since_estimate < ESTIMATE_EVERY or len(self._hist) < ESTIMATE_EVERY:
            return
        self._since_estimate = 0
        lateness = sorted(self._hist)
        want = min(self.max_frames, max(self.min_frames, math.ceil(lateness[int(QUANTILE * (len(lateness) - 1))]) + 1))
        if want > self.target:
            self._wait += want - self.target
            self.target = want
        elif want < self.target:
            self.target -= 1

    def _anchor(self, ts: int) -> None:
        self.anchors += 1
        self._hist.clear()  # a new timeline: the old arrivals say nothing about it
        self._fastest.clear()
        self._next = ts
        self._wait = self.target
        self._empty = 0

    def _resync(self, ts: int) -> None:
        self.resyncs += 1
        self.dropped += len(self._frames)
        self._frames.clear()
        self._partial.clear()
        self._anchor(ts)

    def _store(self, ts: int, payload: bytes) -> None:
        nxt = self._next
        assert nxt is not None
        if len(payload) == FRAME and (ts - nxt) % FRAME == 0:  # the usual 20 ms packet on the grid
            if ts in self._frames:
                self.duplicates += 1
            elif ts >= nxt:
                self._frames[ts] = payload
            return
        # any other size or alignment: write the samples into the grid's frames
        pos, end = ts, ts + len(payload)
        while pos < end:
            start = nxt + (pos - nxt) // FRAME * FRAME
            take = min(end, start + FRAME) - pos
            if start >= nxt and start not in self._frames:
                buf = self._partial.get(start)
                if buf is None:
                    buf = self._partial[start] = bytearray(self.silence + bytes(FRAME))  # samples, then filled flags
                off = pos - start
                buf[off : off + take] = payload[pos - ts : pos - ts + take]
                buf[FRAME + off : FRAME + off + take] = b"\x01" * take
                if buf.count(1, FRAME) == FRAME:
                    self._frames[start] = bytes(buf[:FRAME])
                    del self._partial[start]
            pos += take

    @property
    def depth(self) -> int:
        """Frames buffered from the play position on."""
        return len(self._frames)

    def tick(self) -> bytes | None:
        """The frame for this 20 ms slot (None before the first packet ever arrived)."""
        self._ticks += 1
        nxt = self._next
        if nxt is None:
            return self._last and self.silence
        self.started = True
        if self._wait > 0:
            self._wait -= 1
            return self.silence
        self._window += 1
        self._min_depth = min(self._min_depth, len(self._frames))
        if self._window >= WINDOW_TICKS:
            # the delay actually held (the least depth seen in the window) beyond the target: cut it
            for _ in range(self._min_depth - self.target - 1):
                if self._frames.pop(nxt, None) is not None or self._partial.pop(nxt, None) is not None:
                    self.dropped += 1
                nxt += FRAME
            self._window, self._min_depth = 0, 1 << 30
        while len(self._frames) > self.max_frames + 2:  # a burst after a network stall: keep the delay bounded
            oldest = min(self._frames)
            del self._frames[oldest]
            self.dropped += 1
            nxt = max(nxt, oldest + FRAME)
            for stale in [t for t in self._partial if t < nxt]:
                del self._partial[stale]
        frame = self._frames.pop(nxt, None)
        self._next = nxt + FRAME
        if frame is not None:
            self._empty = 0
            self._concealed_run = 0
            self._last = frame
            self.played += 1
            return frame
        partial = self._partial.pop(nxt, None)
        if self._frames or partial is not None:  # a hole with later audio: a lost frame
            self.concealed += 1
            self._concealed_run += 1
            if partial is not None:
                return bytes(partial[:FRAME])
            return self._last if self._concealed_run == 1 and self._last is not None else self.silence
        self._empty += 1
        self._concealed_run += 1
        if self._empty == 1 and self._last is not None:
            self.concealed += 1
            return self._last  # the newest packet may be lost, not the stream ended: conceal once
        return self.silence

    def stats(self) -> dict[str, int]:
        return {
            "jb_target_ms": self.target * 20, "jb_played": self.played, "jb_concealed": self.concealed, "jb_late": self.late,
            "jb_duplicates": self.duplicates, "jb_dropped": self.dropped, "jb_resyncs": self.resyncs,
        }
