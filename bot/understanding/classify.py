"""What the caller wants, by meaning: the nearest exemplar phrasings.

Each intent has exemplars: the built-in ones (exemplars.toml) and the business's own
(each FAQ's question and examples; the emergency situations). An utterance's score for an
intent is its cosine similarity to the intent's nearest exemplar, plus a small boost when
the keyword reading (keywords.py) agrees. Emergencies are decided first and on their own
bar, because missing one is the costly mistake: at or above ``EMERGENCY_SURE`` it is an
emergency; between ``EMERGENCY_ASK`` and that, or when the best other intent is only
slightly ahead, the receptionist asks ("Is this an emergency?"). Fire, gas and danger to
life (by meaning or by keyword) always count. Below ``FLOOR`` nothing matched. The
thresholds were calibrated on the dev half of bench/dialogue_data (bench/dialogue.py).
Without the encoder, the keyword reading is the answer.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import replace
from importlib import resources

import numpy as np

from bot.language import DIGIT_WORDS, Words
from bot.names import without_intro
from bot.profile import Profile
from bot.understanding import keywords
from bot.understanding.encoder import MODEL_SHA256, Encoder
from bot.understanding.faq_rank import FaqTexts, load_ranker
from bot.understanding.head import Head, load_head
from bot.understanding.reading import Evidence, Reading

EMERGENCY_SURE = 0.58  # emergency at or above this
EMERGENCY_ASK = 0.45  # ask between this and EMERGENCY_SURE
ASK_BEHIND = 0.15  # ... or when the emergency is at most this far behind the best other intent (sure needs it ahead)
DANGER_SURE = 0.62
FLOOR = 0.38  # below: no intent matched
KEYWORD_BOOST = 0.10  # the keyword reading agrees (an FAQ's keywords)
PHRASE_BOOST = 0.25  # ... by the built-in phrase lists (hours, address, a person, goodbye, ...)
URGENCY_BOOST = 0.04  # per urgency cue ("getting worse", "won't stop", ...), at most two
EMERGENCY_KEYWORD_BOOST = 0.05
FAQ_MARGIN = 0.02  # an FAQ the keywords don't back must beat a staff task, a message and out-of-scope by this
GENERIC = ("task", "message", "out_of_scope")
# The keyword reading decides these when no emergency is in sight: their phrase lists are precise.
DECISIVE = ("goodbye", "wrong_number", "person", "repeat", "identity")


_LEAD = re.compile(r"^(?:(?:hi|hello|hey|hiya|yeah|yes|yep|um+|uh+|erm|er|so|oh|ok|okay|well|sorry|right|there|and)\b[\s,.!?]*)+", re.I)
_FILLER = re.compile(r"\b(?:um+|uh+|erm|you know|i mean|kind of|sort of|basically|literally)\b[\s,]*", re.I)


def core(raw: str) -> str:
    """The words that carry the meaning: greetings and fillers dropped ("hi um yeah so
    there's like water..." -> "there's water...")."""
    text = _FILLER.sub("", _LEAD.sub("", raw.strip()))
    return text if len(text.split()) >= 2 else raw


_CLAUSE = re.compile(r"[.,;!?]+|\b(?:and|but|also|plus|because|cause|so)\b", re.I)
LONG = 12  # words: from here a run-on's clauses are also read for an emergency
MAX_CLAUSES = 2


def clauses(raw: str) -> list[str]:
    """The longest clauses of a long utterance (at most MAX_CLAUSES, 4 words or more);
    none for a short one."""
    if len(raw.split()) < LONG:
        return []
    parts = [core(p) for p in _CLAUSE.split(raw) if len(p.split()) >= 4]
    return sorted(parts, key=lambda p: -len(p.split()))[:MAX_CLAUSES] if len(parts) > 1 else []


_NEW_CLAUSE = re.compile(
    r"[.?!;,]\s+|\s(?=(?:there's|there is|theres|my|our|his|her|their|the|it's|its|it is|we've|we have|i've|i have|"
    r"someone|somebody|he's|she's|they're|we're|i'm|he|she|they|we)\b)", re.I)
PART_ASK = 0.9  # the head's emergency probability for what is told after a request (dev: 4 of 8 missed caught, 8 of 5,464 others asked)
MIN_LEAD, MIN_PART = 3, 4  # words before a new clause, and in it


_REQUEST = re.compile(r"^(?:what|when|where|how|who|which|do|does|is|are|can|could|would|will|may|have|has|i'd like|"
                      r"i would like|i want|i need|i'm calling|i am calling|i was wondering|just)\b", re.I)


def told_after(raw: str) -> list[str]:
    """What follows the request or question a caller opens with ("can I leave a message for the
    vet", "what time do you open"), from its first new clause (at most two such tails, each
    ``MIN_PART`` words or more); none when the caller did not open with one."""
    lead_words = core_words(raw)
    if len(raw.split()) < MIN_LEAD + MIN_PART or not (
            _REQUEST.match(core(raw)) or lead_words.has(*keywords.MESSAGE, *keywords.CALLBACK)):
        return []
    out: list[str] = []
    for m in _NEW_CLAUSE.finditer(raw):
        lead, rest = raw[:m.start()], raw[m.end():]
        if len(lead.split()) >= MIN_LEAD and len(rest.split()) >= MIN_PART:
            out.append(rest.strip())
            if len(out) == 2:
                break
    return out


_TAKEN_BACK = re.compile(r"\b(?:actually no|no actually|no wait|wait no|(?:no )?scrap that|forget that|never mind that|"
                         r"no sorry|sorry no|hang on no)\b[\s,.!-]*", re.I)


def taken_back(raw: str) -> str | None:
    """What the caller says after taking back what they began with ("what time do you open
    tomorrow, actually no, forget that, water's coming through my ceiling"), or None."""
    last = None
    for m in _TAKEN_BACK.finditer(raw):
        last = m
    if last is None:
        return None
    rest = raw[last.end():].strip()
    words = [x for x in re.findall(r"[a-z']+", rest.lower()) if x not in DIGIT_WORDS]
    return rest if len(words) >= 3 else None  # not "... oh four one six, no sorry, four one nine": a number put right


def core_words(raw: str) -> Words:
    return Words(core(raw))


@functools.cache
def builtin_exemplars() -> dict[str, tuple[str, ...]]:
    raw = tomllib.loads(resources.files("bot.understanding").joinpath("exemplars.toml").read_text(encoding="utf-8"))
    return {k: tuple(v) for k, v in raw["intents"].items()}


def exemplars_for(profile: Profile) -> list[tuple[str, str]]:
    """(label, sentence) pairs: built-in intents, then "faq:N" and the emergency situations."""
    out = [(label, s) for label, sents in builtin_exemplars().items() for s in sents]
    for i, faq in enumerate(profile.faqs):
        out += [(f"faq:{i}", s) for s in (faq.question, *faq.examples) if s]
    out += [("emergency", s) for s in profile.emergency.situations]
    if not profile.emergency.configured:  # a business with no emergency line has no emergency intent
        out = [(label, s) for label, s in out if label != "emergency"]
    return out


class Understanding:
    """Reads utterances for one business profile. ``encoder`` None: keywords only."""

    def __init__(self, profile: Profile, encoder: Encoder | None, *, head: Head | None = None, trained: bool = True,
                 ranked: bool = True) -> None:
        """``head``: the trained head (head.py), by default the shipped one when there is an
        encoder; ``trained`` False: none (the hand-written rules read, as when training it).
        ``ranked``: the shipped FAQ ranker (faq_rank.py) picks the FAQ, when there is an
        encoder; it is part of the evidence the head is trained on. False: the nearest exemplar."""
        self.profile = profile
        self.encoder = encoder
        self.head = head or (load_head(MODEL_SHA256) if trained and encoder is not None else None)
        self.faq_ranker = load_ranker(MODEL_SHA256) if ranked and encoder is not None else None
        pairs = exemplars_for(profile)
        self._labels = sorted({label for label, _ in pairs})
        self._label_of = np.array([self._labels.index(label) for label, _ in pairs])
        self._matrix = encoder.embed_many([s for _, s in pairs]) if encoder is not None else None
        self.faq_texts: FaqTexts | None = None
        if encoder is not None and self._matrix is not None:
            rows = [self._matrix[[j for j, (label, _) in enumerate(pairs) if label == f"faq:{i}"]]
                    for i in range(len(profile.faqs))]
            self.faq_texts = FaqTexts(profile.faqs, rows, encoder.embed_many([f.answer for f in profile.faqs]))
        # the staff tasks each FAQ is itself about ("Can I book a hygienist?": booking)
        self._faq_tasks = [{t for t in keywords.STAFF_TASKS if Words(" ".join((f.question, *f.examples))).has(t)}
                           for f in profile.faqs]

    def _label_scores(self, sims: np.ndarray) -> dict[str, float]:
        """Each label's nearest exemplar."""
        scores = np.full(len(self._labels), -1.0, dtype=np.float32)
        np.maximum.at(scores, self._label_of, sims)
        return dict(zip(self._labels, scores.tolist(), strict=True))

    def _another_task(self, w: Words, i: int) -> bool:
        """The caller asks for a staff task FAQ ``i`` is not about ("book a check-up" is not
        "what does a check-up cost")."""
        asked = {t for t in keywords.STAFF_TASKS if w.has(t)}
        return bool(asked) and not asked & self._faq_tasks[i]

    def _instead_of_faq(self, w: Words, i: int, meaning: dict[str, float], *, backed: bool) -> str | None:
        """A generic intent that should answer instead of FAQ ``i``: a staff task the FAQ
        is not about ("book a check-up" is not "what does a check-up cost"), or, when the
        FAQ's keywords do not back it, a task, message or out-of-scope request about as
        close in meaning (the FAQ must lead by ``FAQ_MARGIN``); when they back it, only an
        out-of-scope request closer by meaning alone ("order me some dog food": the
        word food is not the refill FAQ)."""
        if self._another_task(w, i):
            return "task"
        rival = max((g for g in GENERIC if g in meaning), key=lambda g: meaning[g], default=None)
        if rival is None:
            return None
        lead = meaning[f"faq:{i}"] - meaning[rival]  # by meaning alone
        if backed:  # the keywords back the FAQ: only a request it plainly isn't for (closer by meaning) overrules them
            return rival if rival == "out_of_scope" and lead < 0.0 else None
        return rival if lead < FAQ_MARGIN else None

    def read(self, raw: str) -> Reading:
        """CPU-bound (about 5-15 ms with the encoder): call it off the event loop."""
        raw = without_intro(raw)  # "Hi, this is Dana from Keystone Insurance. ...": what follows is what they want
        rest = taken_back(raw)
        if rest is not None and not keywords.danger(Words(raw)):  # a danger said is never taken back
            return self.read(rest)
        if self.encoder is None or self._matrix is None:  # keywords only: a hedged emergency is asked about
            w = Words(raw)
            kw, kw_faq = keywords.intent(w, self.profile)
            danger_kw = keywords.danger(w)
            hedged = w.has(*keywords.CALM, *keywords.NOT_DANGER) or keywords.asking(core_words(raw))
            if kw == "emergency" and not danger_kw and w.has(*keywords.NO_EMERGENCY) and not _pressed(w):
                return Reading("task")  # "it's not an emergency, but ...": a message, never asked about
            return Reading(kw, kw_faq, danger=danger_kw, sure=danger_kw or not (kw == "emergency" and hedged))
        ev, rule = self.evidence(raw)
        if self.head is None:
            return rule
        r = self.head.decide(ev, rule)
        if r.intent == "faq" and (self._another_task(ev.w, r.faq) or ev.w.has(*keywords.CALLBACK)):
            return replace(r, intent="task", faq=-1)  # a call back asked for, or a task the FAQ is not about
        if r.intent == "emergency" and not r.danger and ev.w.has(*keywords.NO_EMERGENCY) and not _pressed(ev.w):
            # "it's not an emergency, but it is urgent: the service elevator for my movers": a message, never asked about
            return Reading("task", score=r.emergency_score, by="head", emergency_score=r.score)
        if r.intent == "emergency" and r.sure and not r.danger and (self._hedged(ev.w) or keywords.denied(ev.w, self.profile)):
            return replace(r, sure=False)  # "it doesn't hurt though", "can someone call me": asked, never put through unasked
        if r.intent not in ("emergency", "sales") and not ev.w.has(*keywords.CALM_SAID, *keywords.CALM, *keywords.NOT_DANGER,
                                                                   *keywords.CHRONIC) and self._told_after(raw) >= PART_ASK:
            # "can I leave a message for the vet, my dog's been vomiting blood": the request first, the emergency after it
            return Reading("emergency", sure=False, score=r.emergency_score, by="head", emergency_score=r.score)
        if r.intent in ("wrong_number", "out_of_scope", "unknown", "hello") and ev.kw == "person":
            return Reading("person", score=r.score, by="head", emergency_score=r.emergency_score)  # "is Mick about?"
        if r.intent != "emergency" and _pressed(ev.w) and not keywords.asking(core_words(raw)):
            # "not urgent I guess but water is pouring everywhere right now": two signs of urgency are asked about
            return Reading("emergency", sure=False, score=r.emergency_score, by="head", emergency_score=r.score)
        return r

    def _told_after(self, raw: str) -> float:
        """The head's emergency probability for what is told after a request or question
        ("what time do you open, there's water coming from under the units"): the rest of the
        utterance from its first new clause, read on its own."""
        assert self.head is not None
        best = 0.0
        for part in told_after(raw):
            ev, rule = self.evidence(part)
            if rule.intent != "sales":
                best = max(best, self.head.emergency(ev, rule))
        return best

    def _hedged(self, w: Words) -> bool:
        """The caller said it is calm, or asked for a call back without a word of urgency."""
        asked_back = w.has(*keywords.CALLBACK, *keywords.MESSAGE) and not keywords.emergency(w, self.profile)
        return (w.has(*keywords.CALM_SAID) or asked_back) and not w.has(*keywords.URGENCY)

    def evidence(self, raw: str) -> tuple[Evidence, Reading]:
        """What the reading is decided from, and the hand-written rules' reading (needs the encoder)."""
        raw = without_intro(raw)
        w = Words(raw)
        kw, kw_faq = keywords.intent(w, self.profile)
        kw_label = f"faq:{kw_faq}" if kw == "faq" else kw
        best, meaning, danger_score, em, vec = self._by_meaning(raw, kw, kw_label)
        said_calm = w.has(*keywords.CALM_SAID) and not w.has(*keywords.URGENCY)  # "no emergency, just...": no boost
        if keywords.emergency(w, self.profile) and not said_calm:
            em += EMERGENCY_KEYWORD_BOOST
        em += URGENCY_BOOST * min(2, sum(w.count(c) for c in keywords.URGENCY))
        ev = Evidence(raw, w, kw, kw_faq, vec, meaning, best, danger_score, em)
        if self.faq_ranker is not None and self.faq_texts is not None:
            ev = replace(ev, ranked_faq=self.faq_ranker.pick(self.faq_texts.features(ev)))
        return ev, self._rules(ev, danger_kw=keywords.danger(w), said_calm=said_calm)

    def _rules(self, ev: Evidence, *, danger_kw: bool, said_calm: bool) -> Reading:
        """The hand-written reading: thresholds on the scores, the keyword cues."""
        raw, w, kw, kw_label, best, meaning, em = ev.raw, ev.w, ev.kw, ev.kw_label, ev.best, ev.meaning, ev.em
        label, score = max(best.items(), key=lambda kv: kv[1])
        asking = keywords.asking(core_words(raw))  # "how do I test my smoke alarm?": a question, not a report
        routine = w.has(*keywords.NOT_DANGER)  # "the smoke alarm is chirping": a battery, not a fire
        danger = danger_kw or (ev.danger_score >= DANGER_SURE and not asking and not routine)
        if keywords.sales(w) and not danger:  # a sales call, robocall or survey, whatever else it mentions
            return Reading("sales", score=score, by="keywords", emergency_score=em)
        calm = w.has(*keywords.CALM) or asking or routine  # "a bit", "not urgent", "for a few days": ask, never assume
        # a message asked for outright ("message please, my filling fell out"): asked about, unless said as an emergency
        calm = calm or (w.has(*keywords.CALLBACK, *keywords.MESSAGE) and not keywords.emergency(w, self.profile))
        if danger or (em >= EMERGENCY_SURE and em >= score and not calm):
            return Reading("emergency", danger=danger, sure=True, score=em, by="meaning", emergency_score=score)
        # said calmly ("not urgent"), or a callback asked for with a calm cue ("a bit", "for a few days"): no question
        said_calm = said_calm or (kw in ("message", "task") and w.has(*keywords.CALM) and not w.has(*keywords.URGENCY))
        said_calm = said_calm or routine or (w.has(*keywords.CHRONIC) and em < EMERGENCY_SURE and not w.has(*keywords.URGENCY))
        if said_calm and em >= EMERGENCY_ASK and not danger:  # a calm report: the FAQ its keywords name, or a message
            if label.startswith("faq:") and kw_label == label and not w.has(*keywords.CALLBACK) and self._instead_of_faq(
                    w, int(label[4:]), meaning, backed=True) is None:
                return Reading("faq", int(label[4:]), score=score, by="meaning", emergency_score=em)
            return Reading("task", score=score, by="meaning", emergency_score=em)
        behind = 0.0 if asking and not keywords.emergency(w, self.profile) else ASK_BEHIND  # a question must lead
        rival = meaning[label] if label.startswith("faq:") else score  # an FAQ's keywords do not hide an emergency
        if em >= EMERGENCY_ASK and em >= rival - behind:
            return Reading("emergency", sure=False, score=em, by="meaning", emergency_score=score)
        return self._not_an_emergency(w, kw, kw_label, label, score, meaning, em)

    def _by_meaning(self, raw: str, kw: str, kw_label: str) -> tuple[dict[str, float], dict[str, float], float, float, np.ndarray]:
        """The encoder's scores per label, boosted where the keywords agree: (the scores
        without danger and emergency, the scores before the boosts, danger, emergency);
        a long run-on's clauses are scored too, as an emergency may be one of them."""
        assert self.encoder is not None and self._matrix is not None
        parts = clauses(raw)
        if parts:  # a long run-on: the whole and its clauses from one run of the model (clause = its tokens' mean)
            vec, part_vecs = self.encoder.embed_parts(core(raw), parts)
        else:
            vec, part_vecs = self.encoder.embed(core(raw)), []
        best = self._label_scores(self._matrix @ vec)
        meaning = dict(best)  # before the keyword boosts
        if kw_label in best:
            best[kw_label] += KEYWORD_BOOST if kw == "faq" else PHRASE_BOOST
        danger_score = best.pop("danger", -1.0)
        em = best.pop("emergency", -1.0)
        for part_vec in part_vecs if em < EMERGENCY_SURE else ():  # a run-on: the emergency may be one clause
            part_scores = self._label_scores(self._matrix @ part_vec)
            danger_score = max(danger_score, part_scores.get("danger", -1.0))
            em = max(em, part_scores.get("emergency", -1.0))
        em = max(em, danger_score if self.profile.emergency.configured else -1.0)
        return best, meaning, danger_score, em, vec

    def _not_an_emergency(
        self, w: Words, kw: str, kw_label: str, label: str, score: float, meaning: dict[str, float], em: float,
    ) -> Reading:
        """Neither an emergency nor asked about as one: the keywords where they decide, else the meaning."""
        if kw == "person" and w.has(*keywords.CALLBACK):  # "speak to someone about Max's weight, could they call me"
            return Reading("message", score=score, by="keywords", emergency_score=em)
        if kw in DECISIVE:
            return Reading(kw, score=score, by="keywords", emergency_score=em)
        if w.has(*keywords.CALLBACK):  # "get back to me about a parking permit": a message, not the FAQ's answer
            return Reading("message", score=score, by="keywords", emergency_score=em)
        if w.has(*keywords.ADVICE) and kw not in ("hours", "address"):  # "which pet insurance is the cheapest?"
            return Reading("out_of_scope", score=score, by="keywords", emergency_score=em)
        if label == "out_of_scope" and w.has(*keywords.STAFF_TASKS) and not w.has("book me", "order me", "get me"):  # "I want to change Rocky's op": the team's task
            return Reading("task", score=score, by="keywords", emergency_score=em)
        if score < FLOOR:
            return Reading("unknown", score=score, by="meaning", emergency_score=em)
        if label.startswith("faq:"):
            generic = self._instead_of_faq(w, int(label[4:]), meaning, backed=kw_label == label)
            if generic is not None:
                return Reading(generic, score=meaning[generic], by="meaning", emergency_score=em)
            return Reading("faq", int(label[4:]), score=score, by="meaning", emergency_score=em)
        return Reading(label, score=score, by="meaning", emergency_score=em)


def _pressed(w: Words) -> bool:
    """Two or more signs of urgency said ("pouring", "everywhere", "right now"), whatever else was."""
    return sum(1 for cue in keywords.URGENCY if w.has(cue)) >= 2
