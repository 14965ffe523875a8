"""``python -m bench.calls``: the command line (``--worker`` runs one caller process)."""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # python bench/calls
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import bench.calls  # noqa: E402
from bench.calls.callers import caller_pool, worker_main  # noqa: E402
from bench.calls.modes import drain, soak, table  # noqa: E402
from bench.calls.report import VAD_TAILS, vad_tails_ms  # noqa: E402
from bench.calls.stack import has_uvloop, timing_env  # noqa: E402
from bench.fakes_server import Profile, reply_audio_frames  # noqa: E402
from bot.settings import DEFAULT_GREETING, Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main()
    ap = argparse.ArgumentParser(prog="python -m bench.calls", description=(bench.calls.__doc__ or "").split("\n\n")[0])
    ap.add_argument("--n", default="1,50,100,300", help="comma-separated numbers of simultaneous calls")
    ap.add_argument("--quick", action="store_true", help="a short run: N = 1, 20, one turn per call")
    ap.add_argument("--live", action="store_true", help="Deepgram's live socket (STT_STREAMING=true) instead of the batch API")
    ap.add_argument("--speculative-llm", choices=("true", "false"), default=None, help="the bot's SPECULATIVE_LLM (live STT)")
    ap.add_argument("--embedded", action="store_true",
                    help="the bot on its embedded default (whisper, receptionist, piper) instead of the profiled fakes; "
                         "N defaults to 1; the ovh/drop columns assume the fakes' profile and do not apply")
    ap.add_argument("--soak", type=int, default=0, help="soak mode: this many concurrent calls for --seconds")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--drain", type=int, default=0, help="drain mode: this many live calls, then SIGTERM the bot")
    ap.add_argument("--drain-seconds", type=float, default=None, help="the bot's DRAIN_SECONDS (default: its own default)")
    ap.add_argument("--drain-after-s", type=float, default=3.0, help="SIGTERM this long after all calls are up")
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop", "both"), default="auto",
                    help="the bot's event loop; auto = what python -m bot does (uvloop when installed)")
    ap.add_argument("--turns", type=int, default=2, help="caller utterances per call (after the greeting)")
    ap.add_argument("--pauses", action="store_true",
                    help="callers speak the utterances with 300-600 ms mid-sentence pauses (examples/callers_pauses)")
    ap.add_argument("--completeness", choices=("true", "false"), default=None,
                    help="the bot's TURN_COMPLETENESS (default: its own default); with --pauses the fake STT hears the words")
    ap.add_argument("--complete-ms", type=int, default=None, help="the bot's TURN_COMPLETE_MS (default: its own default)")
    ap.add_argument("--end-silence-ms", type=int, default=None, help="the bot's END_SILENCE_MS (default: its own default)")
    ap.add_argument("--early-turn-ms", type=int, default=None, help="the bot's EARLY_TURN_MS (default: its own default)")
    ap.add_argument("--endpointing-ms", type=int, default=None,
                    help="--live: the bot's DEEPGRAM_ENDPOINTING_MS, which the fake's final follows (default: the bot's own)")
    ap.add_argument("--ramp-s", type=float, default=2.0, help="calls start spread evenly over this many seconds")
    ap.add_argument("--frames-per-message", type=int, default=None, help="the bot's MEDIA_FRAMES_PER_MESSAGE (20 ms frames per media message)")
    ap.add_argument("--bot-workers", type=int, default=1, help="the bot's WORKERS (processes on one port); CPU and RSS are summed over them")
    ap.add_argument("--burst", action="store_true",
                    help="every call says the same utterances with the same gaps, so with --ramp-s 1 each round's N turn "
                         "ends fall within about a second (compare p95 with N=1)")
    ap.add_argument("--workers", type=int, default=0, help="caller processes (0 = one per 100 calls, at most 4)")
    ap.add_argument("--caller-asyncio", action="store_true", help="callers on plain asyncio even if uvloop is installed")
    d = Profile()
    ap.add_argument("--stt-delay", type=float, default=d.stt_delay_s, help="fake Deepgram: request -> transcript, s")
    ap.add_argument("--llm-first", type=float, default=d.llm_first_s, help="fake OpenAI: request -> first token, s")
    ap.add_argument("--llm-tps", type=float, default=d.llm_tokens_per_s, help="fake OpenAI: tokens per second after it")
    ap.add_argument("--tts-first", type=float, default=d.tts_first_s, help="fake ElevenLabs: request -> first audio, s")
    ap.add_argument("--tts-chunk-delay", type=float, default=d.tts_chunk_delay_s, help="fake ElevenLabs: s between 200 ms chunks")
    ap.add_argument("--reply", default=d.reply, help="what the fake LLM answers to every turn")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None, help="append every call's numbers here, one JSON line per table row")
    ap.add_argument("--log-dir", default=None, help="keep the bot's, fakes' and callers' logs here (default: a temp dir, removed)")
    ap.add_argument("--profile-cmd", default=None,
                    help="run this on the bot's pid during each row, e.g. 'py-spy record -d 20 -o /tmp/p{n}.txt -f raw -p {pid}'")
    args = ap.parse_args(argv)

    args.ns = [int(x) for x in args.n.split(",") if x.strip()]
    if args.quick:
        args.ns, args.turns = [1, 20], 1
    if args.embedded and args.n == ap.get_default("n"):
        args.ns = [1]
    args.profile = Profile(stt_delay_s=args.stt_delay, llm_first_s=args.llm_first, llm_tokens_per_s=args.llm_tps,
                           tts_first_s=args.tts_first, tts_chunk_delay_s=args.tts_chunk_delay, reply=args.reply)
    args.reply_frames = reply_audio_frames(args.profile)
    args.greeting_frames = math.ceil(8 * max(200, args.profile.tts_ms_per_char * len(DEFAULT_GREETING)) / 160)
    args.pool = caller_pool(args.pauses)
    args.caller_uvloop = has_uvloop() and not args.caller_asyncio
    env = {"TWILIO_VALIDATE": "false", **timing_env(args)}
    settings = Settings.from_env(env)
    args.vad_tails = vad_tails_ms(args.pool, settings)
    VAD_TAILS.update(args.vad_tails)
    args.vad_tail_ms = float(np.mean(list(args.vad_tails.values()))) if args.vad_tails else float("nan")
    if args.loop == "both":
        loops = ["asyncio", "uvloop"] if has_uvloop() else ["asyncio"]
    elif args.loop == "auto":
        loops = ["uvloop" if has_uvloop() else "asyncio"]
    else:
        loops = [args.loop]
    if "uvloop" in loops and not has_uvloop():
        print("uvloop is not installed (uv sync --extra fast)", file=sys.stderr)
        return 2
    if args.drain:
        asyncio.run(drain(args, settings, loops))
    elif args.soak:
        asyncio.run(soak(args, settings, loops))
    else:
        asyncio.run(table(args, settings, loops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
