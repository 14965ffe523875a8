"""How well the dialogue understands callers: intents, emergencies, messages, CPU.

    uv run --extra local python -m bench.dialogue [--split dev|test|all] [--llm] [--show-errors]

Data (bench/dialogue_data): one ``*.txt`` per business, ``label :: utterance`` lines
(written the way people talk on the phone, not the way the business file is), and
``conversations.toml``, multi-turn calls with the outcome and the message fields they must
leave. Utterances alternate between a dev half (thresholds are calibrated on it) and a test
half, per label; both are printed. ``blind*_<business>.txt`` and ``blind*_conversations.toml``
are blind sets, each written before a round of tuning and reported on its own, by its prefix
("blind": branch understand2's, "blind_u3": understand3's): their errors are hidden unless
``--show-blind-errors``, and nothing is tuned to them. Each utterance is a fresh call at the file's local time.
What the dialogue did is read from its behaviour (its reply, actions and the message form
it started), not from any label it gives itself, so the same bench measures any version
(run it on an older checkout: ``cd OLD && PYTHONPATH=$PWD python /path/to/bench/dialogue.py``).
When the receptionist asks "Is this an emergency?", the simulated caller answers yes for
an emergency and "no, it can wait" otherwise; the outcome after the answer counts, and the
asks are counted too.

Prints, per split: accuracy per intent and overall, emergency recall, how many were asked,
the false-emergency rate, the danger line (911/999) for fire, gas and danger to life, the
conversations' outcomes and message-field accuracy, and CPU per utterance (process time of
the whole reply) with p50/p95 wall time. ``--llm`` runs the same through the configured
OpenAI-compatible server (``OPENAI_BASE_URL``), where only actions (transfers, messages,
hang-ups) can be read from its behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the bot has it (bot/__init__.py), before anything loads numpy
DATA = Path(__file__).resolve().parent / "dialogue_data"
ROOT = Path(__file__).resolve().parents[1]
EMERGENCY_LABELS = ("emergency", "danger")
DANGER_LINE = re.compile(r"\b(call|dial) (911|999|112|000)\b", re.I)
HOURS_TEXT = re.compile(r"\b(we're open|we're closed|we open|we close|open \d|closed (on|at|today|tomorrow|now)|\d ?(am|pm))\b", re.I)


@dataclass
class Utterance:
    business: str
    labels: tuple[str, ...]
    text: str
    split: str


@dataclass
class Business:
    key: str
    file: Path
    now: datetime
    utterances: list[Utterance] = field(default_factory=list)


def load_data() -> dict[str, Business]:
    out: dict[str, Business] = {}
    for f in sorted(DATA.glob("*.txt")):
        head = dict(re.findall(r"^# (business|now): (.+)$", f.read_text(), re.M))
        blind = f.stem.rsplit("_", 1)[0] if f.stem.startswith("blind") else ""  # the blind set's name
        b = Business(f.stem, ROOT / head["business"].strip(), datetime.fromisoformat(head["now"].strip()))
        seen: dict[str, int] = defaultdict(int)
        for line in f.read_text().splitlines():
            if "::" not in line or line.startswith("#"):
                continue
            labels, text = (x.strip() for x in line.split("::", 1))
            first = labels.split(",")[0].strip()
            split = blind or ("dev" if seen[first] % 2 == 0 else "test")
            seen[first] += 1
            b.utterances.append(Utterance(f.stem, tuple(x.strip() for x in labels.split(",")), text, split))
        out[f.stem] = b
    return out


def load_profile_compat(path: Path):
    """The profile, also on versions that do not know the newer keys (dropped then)."""
    from bot.profile import ProfileError, load_profile

    try:
        return load_profile(path)
    except ProfileError:
        raw = path.read_text()
        raw = re.sub(r"(?ms)^(examples|situations|danger_say)\s*=\s*\[.*?\]\s*$", "", raw)
        raw = re.sub(r"(?m)^(examples|situations|danger_say)\s*=.*$", "", raw)
        tmp = Path(tempfile.mkdtemp()) / path.name
        tmp.write_text(raw)
        return load_profile(tmp)


def observe(reply: str, actions: list, state: dict, profile) -> str:
    """What the dialogue did, from its behaviour."""
    if any(a.kind == "transfer" and a.purpose == "emergency" for a in actions):
        return "emergency"
    pending = state.get("pending_message") or {}
    if pending.get("urgent") or any(a.kind == "take_message" and a.message and a.message.urgent for a in actions):
        return "emergency"
    if "is this an emergency" in reply.lower():
        return "emergency_ask"
    if any(a.kind == "transfer" for a in actions) or "put you through" in reply:  # "I can't put you through": understood too
        return "person"
    if any(a.kind == "hangup" for a in actions):
        return "goodbye"
    for i, faq in enumerate(profile.faqs):
        if faq.answer in reply:
            return f"faq:{i}"
    if profile.address in reply:
        return "address"
    if "mean to call us" in reply or "wrong number" in reply.lower():
        return "wrong_number"
    if "automated assistant" in reply or reply.startswith("Yes, this is"):
        return "identity"
    if "I'm here" in reply:
        return "hello"
    if pending:
        return "message"
    if reply.startswith("I can tell you our opening hours"):
        return "repeat"
    if HOURS_TEXT.search(reply):
        return "hours"
    if "can't help" in reply:
        return "out_of_scope"
    return "other"


class Runner:
    def __init__(self, make_dialogue, profile, now: datetime) -> None:
        self.make, self.profile, self.now = make_dialogue, profile, now

    async def turn(self, llm, conv, text: str) -> tuple[str, list, float, float]:
        from bot.conversation import Action

        conv.add_user(text)
        said, actions = [], []
        c0, w0 = time.process_time(), time.perf_counter()
        async for item in llm.reply(conv):
            (actions if isinstance(item, Action) else said).append(item)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        reply = "".join(said).strip()
        conv.add_assistant(reply)
        return reply, actions, cpu, wall

    def conversation(self, saved: list):
        from bot.conversation import Conversation

        async def act(action) -> bool:
            saved.append(action)
            return True

        return Conversation(call_id="bench", caller="+15550000000", act=act)


async def run_utterance(r: Runner, llm, u: Utterance) -> dict:
    saved: list = []
    conv = r.conversation(saved)
    reply, actions, cpu, wall = await r.turn(llm, conv, u.text)
    seen = observe(reply, actions + saved, conv.state, r.profile)
    first = seen
    danger_line = bool(DANGER_LINE.search(reply))
    if seen == "emergency_ask":
        is_em = any(x in EMERGENCY_LABELS for x in u.labels)
        reply2, actions2, _, _ = await r.turn(llm, conv, "yes it is" if is_em else "no, it can wait")
        seen = observe(reply2, actions2 + saved, conv.state, r.profile)
        danger_line = danger_line or bool(DANGER_LINE.search(reply2))
    return {"u": u, "seen": seen, "asked": first == "emergency_ask", "cpu": cpu, "wall": wall, "danger_line": danger_line,
            "reply": reply}


async def run_conversation(r: Runner, llm, c: dict) -> dict:
    from bot.call_actions import heard_message
    from bot.phone_numbers import same_number
    from bot.store.api import NewMessage

    saved: list = []
    conv = r.conversation(saved)
    outcome, danger_line, cpu, transferred, asked_person = "other", False, [], False, False
    for line in c["lines"]:
        reply, actions, t, _ = await r.turn(llm, conv, line)
        transferred = transferred or any(a.kind == "transfer" for a in actions)
        cpu.append(t)
        danger_line = danger_line or bool(DANGER_LINE.search(reply))
        seen = observe(reply, actions, conv.state, r.profile)
        asked_person = asked_person or seen == "person"
        if seen == "emergency" or (seen in ("person", "goodbye") and outcome not in ("emergency", "person")):
            outcome = seen  # a person asked for stays the outcome when the caller then says goodbye
        if any(a.kind in ("transfer", "hangup") for a in actions):
            break
    msgs = [a.message for a in saved if a.kind == "take_message" and a.message]
    pending = conv.pending_message() or heard_message(conv)  # what the call stores, incomplete, when the caller hangs up
    if not msgs and pending and pending.get("name") and pending.get("callback_number") and pending.get("about"):
        msgs = [NewMessage(call_sid="bench", caller=conv.caller, name=pending["name"], callback_number=pending["callback_number"],
                           about=pending["about"], urgent=bool(pending.get("urgent")), complete=False)]
    if msgs and not transferred:  # "I can't put you through", then a message
        # an urgent message is the emergency's outcome where there is no one on call; where a message
        # was wanted, its fields say whether urgent was right
        outcome = "emergency" if msgs[-1].urgent and c["outcome"] != "message" else "message"
    if outcome == "message" and asked_person and c["outcome"] == "person":
        outcome = "person"  # a person asked for, no one there: the message taken instead is checked by its fields
    if outcome == "other" and (conv.state.get("pending_message") or {}).get("urgent"):
        outcome = "emergency"
    fields_ok = None
    want = c.get("message")
    if want:
        m = msgs[-1] if msgs else None
        wrong = ["no message"] if m is None else [field for field, good in (
            ("name", _person(m.name) == _person(want["name"])),
            ("number", same_number((m.callback_number or "").split(" ext ")[0], want["number"])  # with its extension or without
             or re.sub(r"\D", "", m.callback_number or "") == want["number"]),
            ("about", want["about"].lower() in (m.about or "").lower()),
            ("urgent", bool(m.urgent) == bool(want["urgent"]))) if not good]
        fields_ok = not wrong
    return {"c": c, "outcome": outcome, "ok": outcome == c["outcome"] and (not c.get("danger") or danger_line),
            "fields_ok": fields_ok, "wrong": wrong if want else [], "msg": msgs[-1] if msgs else None, "cpu": cpu}


_TITLE = re.compile(r"^(?:mr|mrs|ms|miss|mx|dr|doctor|prof|professor|father|reverend|rev|sister)\.?\s+(?=\S+\s+\S)", re.I)


def _person(name: str) -> str:
    """A name as compared: a title before a first name and surname is the same person ("Dr Elena
    Ramos" is "Elena Ramos"); "Mrs Okafor" keeps it (the title is how she is addressed)."""
    return _TITLE.sub("", name.strip().replace(".", "")).lower()


def report(title: str, rows: list[dict], convs: list[dict], show_errors: bool, actions_only: bool) -> None:
    print(f"\n== {title}: {len(rows)} utterances, {len(convs)} conversations")
    per: dict[str, list[bool]] = defaultdict(list)
    for x in rows:
        u = x["u"]
        want = {"emergency" if lb == "danger" else lb for lb in u.labels}
        x["ok"] = x["seen"] in want and not x["asked"] or (x["asked"] and x["seen"] == "emergency" and "emergency" in want)
        bucket = "danger" if u.labels[0] == "danger" else u.labels[0].split(":")[0]
        per[bucket].append(x["ok"])
    if not actions_only:
        for k in sorted(per):
            v = per[k]
            print(f"  {k:14s} {sum(v):3d}/{len(v):3d}  {100 * sum(v) / len(v):5.1f} %")
        allv = [x["ok"] for x in rows]
        print(f"  intent accuracy: {sum(allv)}/{len(allv)} = {100 * sum(allv) / max(1, len(allv)):.1f} %")
    em = [x for x in rows if any(lb in EMERGENCY_LABELS for lb in x["u"].labels)]
    non = [x for x in rows if x not in em]
    rec = [x["seen"] == "emergency" for x in em]
    asked = sum(x["asked"] for x in em)
    print(f"  emergency recall: {sum(rec)}/{len(rec)} = {100 * sum(rec) / max(1, len(rec)):.1f} % (asked first: {asked})")
    false = [x["seen"] == "emergency" for x in non]
    asked_non = sum(x["asked"] for x in non)
    print(f"  false emergencies: {sum(false)}/{len(false)} = {100 * sum(false) / max(1, len(false)):.1f} % "
          f"(non-emergencies asked 'is this an emergency?': {asked_non})")
    dg = [x for x in rows if x["u"].labels[0] == "danger"]
    print(f"  danger line (911/999) for fire, gas, danger to life: {sum(x['danger_line'] for x in dg)}/{len(dg)}")
    if convs:
        ok = [c["ok"] for c in convs]
        fl = [c["fields_ok"] for c in convs if c["fields_ok"] is not None]
        print(f"  conversations with the right outcome: {sum(ok)}/{len(ok)}; message fields exact: {sum(fl)}/{len(fl)}"
              f" = {100 * sum(fl) / max(1, len(fl)):.1f} %")
        wrong = Counter(w for c in convs for w in c["wrong"])  # counts only: a blind set's texts stay hidden
        wrong_outcomes = Counter(f"{c['c']['outcome']}->{c['outcome']}" for c in convs if not c["ok"])
        if wrong or wrong_outcomes:
            print(f"  fields wrong: {dict(sorted(wrong.items()))}; outcomes wrong (want->got): {dict(sorted(wrong_outcomes.items()))}")
    cpu = [x["cpu"] * 1000 for x in rows]
    wall = sorted(x["wall"] * 1000 for x in rows)
    if cpu:
        print(f"  CPU per utterance (whole reply): mean {statistics.mean(cpu):.2f} ms, p50 {statistics.median(cpu):.2f}, "
              f"p95 {sorted(cpu)[int(0.95 * (len(cpu) - 1))]:.2f}; wall p50 {wall[len(wall) // 2]:.2f} ms, "
              f"p95 {wall[int(0.95 * (len(wall) - 1))]:.2f} ms")
    if show_errors:
        for x in rows:
            if not x["ok"]:
                print(f"    x [{x['u'].split}] {','.join(x['u'].labels):18s} -> {x['seen']:14s}{' (asked)' if x['asked'] else ''}"
                      f" | {x['u'].text}")
        for x in dg:
            if x["ok"] and not x["danger_line"]:
                print(f"    x [{x['u'].split}] danger line not said | {x['u'].text}")
        for c in convs:
            if not c["ok"] or c["fields_ok"] is False:
                m = c["msg"]
                print(f"    x conv {c['c']['lines'][0][:50]!r}: {c['outcome']} (want {c['c']['outcome']})"
                      + (f" msg name={m.name!r} number={m.callback_number!r} about={m.about!r} urgent={m.urgent}" if m else ""))


async def main_async(args) -> int:
    from bench.calls import calibration
    from bot.settings import Settings

    print(calibration(), flush=True)
    import bot

    print(f"code under test: {Path(bot.__file__).resolve().parent}")
    data = load_data()
    convs = []
    for f in sorted(DATA.glob("*conversations.toml")):  # conversations.toml, <set>_conversations.toml
        blind = f.stem.removesuffix("_conversations") if f.stem.startswith("blind") else ""
        for c in tomllib.loads(f.read_text())["conv"]:
            convs.append({**c, "business": f"{blind}_{c['business']}", "blind": blind, "file": f.stem} if blind
                         else {**c, "file": f.stem})
    rows: list[dict] = []
    conv_rows: list[dict] = []
    for key, b in data.items():
        mine = not args.files or key.startswith(args.files)  # --files: data files by name, conversation files too
        picked = [c for c in convs if c["business"] == key and (mine or c["file"].startswith(args.files))]
        if not mine and not picked:
            continue
        profile = load_profile_compat(b.file)
        now = b.now.replace(tzinfo=profile.tz)
        if args.llm:
            from bot.providers.openai_llm import OpenAILLM

            env = {**os.environ, "TWILIO_VALIDATE": "false", "BUSINESS_FILE": str(b.file)}
            settings = Settings.from_env(env)

            def make(now=now, settings=settings, profile=profile):
                return OpenAILLM.from_settings(settings, clock=lambda: now)
        else:
            from bot.providers.receptionist import Receptionist

            def make(now=now, profile=profile):
                return Receptionist(profile=profile, clock=lambda: now)

        llm = make()
        t0 = time.perf_counter()
        await llm.start()
        print(f"{key}: {profile.name} at {now.isoformat()}, started in {time.perf_counter() - t0:.1f} s", flush=True)
        r = Runner(make, profile, now)
        for u in b.utterances if mine and not args.conversations_only else ():
            if args.split in ("all", u.split) or (args.split == "blind" and u.split.startswith("blind")):
                rows.append(await run_utterance(r, llm, u))
        for c in picked:
            when = datetime.fromisoformat(c["now"]).replace(tzinfo=profile.tz) if "now" in c else now
            d = make(now=when) if "now" in c else llm
            if d is not llm:
                await d.start()
            try:
                conv_rows.append(await run_conversation(Runner(make, profile, when), d, c))
            finally:
                if d is not llm:
                    await d.close()
        await llm.close()
    for split in (("dev", "test") if args.split == "all" else (args.split,) if args.split in ("dev", "test") else ()):
        report(split, [x for x in rows if x["u"].split == split], [], args.show_errors, args.llm)
    if not args.split.startswith("blind"):
        report("all (dev + test)", [x for x in rows if x["u"].split in ("dev", "test")],
               [c for c in conv_rows if not c["c"].get("blind")], args.show_errors, args.llm)
    for blind in sorted({x["u"].split for x in rows if x["u"].split.startswith("blind")}):
        report(blind, [x for x in rows if x["u"].split == blind], [c for c in conv_rows if c["c"].get("blind") == blind],
               args.show_errors and args.show_blind_errors, args.llm)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    blinds = sorted({f.stem.rsplit("_", 1)[0] for f in DATA.glob("blind*.txt")})
    ap.add_argument("--split", choices=("dev", "test", "blind", *blinds, "all"), default="all",
                    help="blind: every blind set; blind_<name>: one of them")
    ap.add_argument("--files", default="", help="only the data and conversation files whose name starts with this (e.g. u4_)")
    ap.add_argument("--conversations-only", action="store_true", help="only the conversations (the non-blind ones unless --split blind*)")
    ap.add_argument("--llm", action="store_true", help="the configured OpenAI-compatible server instead of the receptionist")
    ap.add_argument("--show-errors", action="store_true", help="dev and test errors (blind ones stay hidden)")
    ap.add_argument("--show-blind-errors", action="store_true", help="also the blind set's errors (not for tuning)")
    args = ap.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
