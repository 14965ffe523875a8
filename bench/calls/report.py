"""What the tables print: one row per (loop, N) from the callers' summaries, the bot's
metrics and /proc samples; the critical path the profile imposes; why calls failed."""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field

from bench.calls.measure import calibration, loadavg, pct
from bench.fakes_server import Profile, first_sentence_s
from bot.settings import Settings


@dataclass
class Row:
    n: int
    loop: str
    calls: list[dict]
    samples: list[dict]
    rss0: float
    m0: dict
    m1: dict
    critical_ms: float
    load: str
    logs: dict = field(default_factory=dict)

    def lat(self) -> list[float]:
        return [t["ms"] for c in self.calls for t in c.get("turns", []) if t.get("ms") is not None]

    def ovh_vad(self, tails: dict[str, float]) -> list[float]:
        """Overhead from the bot's VAD end of speech: latency - critical path - that
        utterance's own VAD tail (how long the VAD still hears speech past the energy end)."""
        return [t["ms"] - self.critical_ms - tails.get(t.get("file", ""), 0.0)
                for c in self.calls for t in c.get("turns", []) if t.get("ms") is not None]


def stage_means(m0: dict, m1: dict) -> dict[str, float]:
    out = {}
    for key, name in (("stt", "phonebot_stt_seconds"), ("llm1", "phonebot_llm_first_token_seconds"),
                      ("tts1", "phonebot_tts_first_byte_seconds"), ("turn", "phonebot_turn_latency_seconds")):
        n = m1.get(name + "_count", 0) - m0.get(name + "_count", 0)
        s = m1.get(name + "_sum", 0) - m0.get(name + "_sum", 0)
        out[key] = s / n * 1000 if n else float("nan")
    for outcome in ("used", "cancelled"):
        k = f'phonebot_speculative_turns_total{{outcome="{outcome}"}}'
        out[f"spec_{outcome}"] = m1.get(k, 0) - m0.get(k, 0)
    return out


def critical_path_ms(settings: Settings, p: Profile, live: bool = False) -> tuple[float, str]:
    """The profile's own share of a turn: what no bot could beat with these vendors."""
    if live:  # the live fake sends the final DEEPGRAM_ENDPOINTING_MS after the end of speech
        ep = settings.deepgram_endpointing_ms
        total = ep + first_sentence_s(p) * 1000 + p.tts_first_s * 1000
        return total, (f"live STT: DEEPGRAM_ENDPOINTING_MS {ep} + LLM first sentence {first_sentence_s(p) * 1000:.0f}"
                       f" + TTS {p.tts_first_s * 1000:.0f} = {total:.0f} ms (a speculative LLM start may beat it)")
    work = p.stt_delay_s * 1000 + first_sentence_s(p) * 1000 + p.tts_first_s * 1000
    es, early = settings.end_silence_ms, settings.early_turn_ms
    if 0 < early < es:
        total = max(es, early + work)
        how = (f"max(END_SILENCE_MS {es}, EARLY_TURN_MS {early} + STT {p.stt_delay_s * 1000:.0f} + LLM first sentence "
               f"{first_sentence_s(p) * 1000:.0f} + TTS {p.tts_first_s * 1000:.0f}) = {total:.0f} ms")
    else:
        total = es + work
        how = (f"END_SILENCE_MS {es} + STT {p.stt_delay_s * 1000:.0f} + LLM first sentence {first_sentence_s(p) * 1000:.0f}"
               f" + TTS {p.tts_first_s * 1000:.0f} = {total:.0f} ms")
    return total, how


HEAD = (f"{'loop':7s} {'N':>4s} {'ok/fail':>9s} | {'lat p50':>7s} {'p95':>6s} {'p99':>6s} | {'ovh p50':>7s} {'p95':>6s} {'p99':>6s}"
        f" | {'pace99':>6s} {'drop':>5s} {'gaps':>5s} | {'cpu%':>5s} {'peak':>5s} {'%/call':>6s} {'rss MB':>6s} {'MB/call':>7s} | {'talk-over':>9s}")
HEAD2 = (f"{'loop':7s} {'N':>4s} | {'srv stt':>7s} {'llm1':>5s} {'tts1':>5s} {'turn':>5s} {'spec u/c':>9s} | "
         f"{'vovh p50':>8s} {'p95':>5s} | "
         f"{'callers%':>8s} {'fakes%':>6s} {'lag max':>7s} {'lag>20':>6s} | {'load 1/5/15':>14s} | bot warnings/errors")


VAD_TAILS: dict[str, float] = {}  # per caller file, set by main()


def fmt_row(r: Row) -> tuple[str, str]:
    lat = r.lat()
    ok = sum(1 for c in r.calls if c.get("ok"))
    fail = len(r.calls) - ok
    ovh = [x - r.critical_ms for x in lat]
    pace = [x for c in r.calls for x in c.get("pace", [])]
    drop = sum(c.get("dropped", 0) for c in r.calls)
    gaps = sum(c.get("underruns", 0) for c in r.calls)
    s0, s1 = r.samples[0], r.samples[-1]
    wall = s1["t"] - s0["t"]
    cpu = (s1["server"] - s0["server"]) / wall * 100 if wall > 0 else float("nan")
    peak = max(((b["server"] - a["server"]) / (b["t"] - a["t"]) * 100 for a, b in itertools.pairwise(r.samples) if b["t"] > a["t"]), default=cpu)
    call_s = sum(c["t1"] - c["t0"] for c in r.calls if "t0" in c)
    per_call = (s1["server"] - s0["server"]) / call_s * 100 if call_s else float("nan")
    rss_peak = max(s["rss"] for s in r.samples)
    callers = (s1["callers"] - s0["callers"]) / wall * 100 if wall > 0 else float("nan")
    fakes = (s1["fakes"] - s0["fakes"]) / wall * 100 if wall > 0 else float("nan")
    st = stage_means(r.m0, r.m1)
    lag = max((c.get("lag_max", 0) for c in r.calls), default=0)
    lag20 = sum(c.get("lag_n20", 0) for c in r.calls)
    line1 = (f"{r.loop:7s} {r.n:4d} {ok:>4d}/{fail:<4d} | {pct(lat, 50):7.0f} {pct(lat, 95):6.0f} {pct(lat, 99):6.0f} | "
             f"{pct(ovh, 50):7.0f} {pct(ovh, 95):6.0f} {pct(ovh, 99):6.0f} | {pct(pace, 99):6.1f} {drop:5d} {gaps:5d} | "
             f"{cpu:5.1f} {peak:5.0f} {per_call:6.2f} {rss_peak:6.0f} {(rss_peak - r.rss0) / r.n:7.2f}")
    warn = ", ".join(f"{k} x{v}" for k, v in sorted(r.logs.items(), key=lambda kv: -kv[1])[:4]) or "-"
    vovh = r.ovh_vad(VAD_TAILS)
    turns = [t for c in r.calls for t in c.get("turns", [])]
    over = sum(1 for t in turns if t.get("over"))
    line1 += f" | {over:>4d}/{len(turns):<4d}"
    line2 = (f"{r.loop:7s} {r.n:4d} | {st['stt']:7.0f} {st['llm1']:5.0f} {st['tts1']:5.0f} {st['turn']:5.0f} "
             f"{int(st['spec_used']):>4d}/{int(st['spec_cancelled']):<4d} | {pct(vovh, 50):8.0f} {pct(vovh, 95):5.0f} | {callers:8.0f} {fakes:6.0f} {lag:7.0f} {lag20:6d} | "
             f"{r.load:>14s} | {warn}")
    return line1, line2


def failures(calls: list[dict]) -> str:
    reasons: dict[str, int] = {}
    for c in calls:
        if c.get("ok"):
            continue
        if c.get("error") or c.get("rejected"):
            why = c.get("error") or "rejected"
        elif c.get("hung_up"):
            why = "the bot ended the call" + ("" if c.get("goodbye") else " without a goodbye heard")
        elif c.get("fallbacks"):
            why = "fallback prompt (a stage failed)"
        elif c.get("greeting_ms") is None:
            why = "no greeting"
        else:
            why = "a turn got no reply"
        reasons[why[:70]] = reasons.get(why[:70], 0) + 1
    return "; ".join(f"{k}: {v}" for k, v in reasons.items())



def dump(args, mode: str, loop: str, n: int, calls: list[dict]) -> None:
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"mode": mode, "loop": loop, "n": n, "calls": calls}) + "\n")


def header(args, settings: Settings) -> float:
    p = args.profile
    print(calibration())
    crit, how = critical_path_ms(settings, p, getattr(args, "live", False))
    print(f"profile: STT {p.stt_delay_s * 1000:.0f} ms; LLM first token {p.llm_first_s * 1000:.0f} ms then {p.llm_tokens_per_s:g} tokens/s; "
          f"TTS first byte {p.tts_first_s * 1000:.0f} ms then {p.tts_chunk_bytes} B every {p.tts_chunk_delay_s * 1000:.0f} ms")
    print(f"reply: {p.reply!r} ({args.reply_frames} frames of audio)")
    print(f"critical path: {how}")
    print(f"  END_SILENCE_MS={settings.end_silence_ms} is {settings.end_silence_ms / crit * 100:.0f}% of it; "
          f"the bot's VAD hears each utterance's tail {args.vad_tail_ms:.0f} ms (mean) past the simulator's end of speech")
    if args.pauses:
        c = args.completeness or ("true" if settings.turn_completeness else "false")
        print(f"callers pause 300-600 ms mid-sentence (examples/callers_pauses; the fake STT hears which words); "
              f"TURN_COMPLETENESS={c} TURN_COMPLETE_MS={args.complete_ms if args.complete_ms is not None else settings.turn_complete_ms}")
    print(f"machine: {os.cpu_count()} cores; load average at start {loadavg()}")
    return crit


def vad_tails_ms(files: list[str], settings: Settings) -> dict[str, float]:
    """How far past the simulator's end of speech (an energy threshold) the bot's VAD
    still hears speech, per utterance: a constant of each file, in every turn."""
    from bot.simulator import load_ulaw, speech_end_frame
    from bot.turns.detector import TurnDetector, TurnEvent
    from media import frames
    from media.vad import Vad

    tails: dict[str, float] = {}
    for f in files:
        u = load_ulaw(f)
        fr = frames.split(u) + [bytes([0xFF]) * 160] * (settings.end_silence_ms // 20 + 5)
        vad, td = Vad(settings.vad_aggressiveness), TurnDetector(end_silence_ms=settings.end_silence_ms, min_speech_ms=settings.min_speech_ms,
                                                                  start_ms=settings.barge_in_ms)
        for i, x in enumerate(fr):
            if td.feed(x, vad.is_speech_ulaw(x)) is TurnEvent.TURN_END:
                tails[f] = float((i + 1 - settings.end_silence_ms // 20 - speech_end_frame(u)) * 20)
                break
    return tails
