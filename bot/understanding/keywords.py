"""Intents by keywords: the fallback when the sentence encoder is not installed, and a
boost for the meaning path (a word such as "address" or a business keyword is strong
evidence). Phrase lists match whole words after light stemming (bot/language.py)."""

from __future__ import annotations

import functools
import re

from bot.language import NOT_NAME, STOP, Words
from bot.profile import Faq, Profile

GOODBYE = ("bye", "goodbye", "bye bye", "that's all", "that is all", "that's it", "that's everything", "nothing else",
           "no thanks", "no thank you", "all set", "i'm good", "i'm done", "have a good day", "have a nice day",
           "have a good one", "take care", "thanks for your help", "thank you for your help", "that helps", "talk later",
           "ta-ra", "cheerio", "see ya")
THANKS_ONLY = {"thanks", "thank", "you", "ok", "okay", "great", "perfect", "cheers", "lovely", "alright", "so", "much",
               "very", "that's", "wonderful", "brilliant", "good", "got", "it", "awesome", "cool", "fine", "right", "oh", "ah",
               "for", "your", "help", "helpful", "then", "again", "anyway", "bye", "now", "a", "lot", "really", "appreciate",
               "that", "was", "all", "i", "needed", "nice", "one", "many", "ta", "well"}
PERSON = ("person", "human", "someone", "somebody", "anyone", "anybody", "agent", "operator", "representative",
          "receptionist", "manager", "staff", "a real", "the office", "the front desk", "the team", "dentist", "landlord",
          "vet", "vets", "doctor", "nurse", "hygienist", "one of the")
REACH = ("speak to", "speak with", "talk to", "talk with", "put me through", "transfer me", "connect me", "get me",
         "get hold of", "reach", "can i speak", "could i speak", "chat with")
HOURS = ("open", "close", "closing", "hours", "what time", "opening", "business hours", "working hours", "until when",
         "how late", "how early", "are you in", "are you around")
ADDRESS_STRONG = ("address", "located", "location", "directions", "find you", "get to you", "get there", "postcode",
                  "zip code", "what street", "which street", "how do i get", "where are you", "where's the office",
                  "where is the office", "where is your office", "where are your offices", "come in person", "visit you",
                  "bus", "train", "subway", "tube", "metro", "nearest station", "drive to you", "walk to you")
NOT_ADDRESS = ("email", "e mail", "website", "web address", "web site", "fax")
IDENTITY = ("right number", "is this", "am i speaking", "who is this", "who am i", "who's this", "have i reached", "did i reach")
PLACES = ("office", "you", "your", "building", "clinic", "practice", "surgery", "based", "shop", "store", "entrance")
MESSAGE = ("message", "call me back", "call back", "callback", "get back to me", "have someone call", "ring me back",
           "let them know", "pass on", "pass along", "contact me", "reach me", "leave a note", "call me")
STAFF_TASKS = ("appointment", "book", "booking", "reschedule", "cancel", "complaint", "quote", "invoice", "billing",
               "bill", "refund", "change my", "move my", "schedule", "change the date", "change the time", "change the day",
               "records", "reference letter", "letter from you", "certificate", "sublet", "direct debit", "overpaid",
               "charged twice", "trim", "op", "operation", "follow up", "discuss", "taken off", "take me off", "add me to",
               "arrange", "spare key", "query a charge", "charge on my", "another day", "different day", "another time")
REPEAT = ("repeat that", "repeat it", "repeat yourself", "repeat the", "please repeat", "you repeat", "say that again", "say again", "pardon", "come again", "one more time", "didn't hear")
HERE = ("anyone there", "anybody there", "are you there", "is this a machine", "hello")
WRONG_SAID = ("wrong number", "misdialed", "misdialled", "dialed the wrong", "dialled the wrong", "called the wrong",
              "rang the wrong", "rung the wrong", "dialed wrong", "dialled wrong")  # said outright
WRONG_NUMBER = (*WRONG_SAID, "wrong place", "wrong company",
                "meant to call", "meant to ring", "trying to call", "trying to get", "trying to reach", "trying to ring",
                "is this not", "isn't this", "is that not")
# Fire, gas and danger to life: always the emergency services line first.
FIRE_GAS = ("fire", "on fire", "flames", "there's smoke", "smoke coming", "smoke is", "full of smoke", "smoke everywhere",
            "see smoke", "smell smoke", "smoky", "smoke alarm going off", "smell gas", "gas smell", "smelling gas", "smell of gas", "smells of gas", "smells like gas",
            "gas leak", "leaking gas", "carbon monoxide", "co alarm", "co detector", "explosion", "electrocuted", "electric shock",
            "burning smell", "smell burning", "smells like burning", "smell of burning", "burning down", "house is burning",
            "barn is burning", "building is burning", "flat is burning", "kitchen is burning", "room is burning")
# A person's life in danger (not a pet's: the vet's own emergency line is for those).
BODY = ("not breathing", "can't breathe", "cannot breathe", "stopped breathing", "hard to breathe", "barely breathe",
        "trouble breathing", "struggling to breathe", "difficulty breathing", "unconscious", "passed out", "collapsed",
        "not moving", "not responding", "unresponsive", "fainted", "feels faint", "heart attack", "stroke", "overdose",
        "bleeding a lot", "bleeding heavily", "choking", "seizure", "fell down the stairs", "won't wake up",
        "not waking up", "can't wake", "isn't waking", "not answering me", "lying on the floor", "won't stop bleeding",
        "can't stop the bleeding", "bleeding badly", "chest pain", "chest pains", "can't swallow", "hardly swallow",
        "hard to swallow", "anaphylactic", "anaphylaxis", "took too many pills", "hit his head", "hit her head",
        "trying to break in", "breaking in right now", "intruder", "with a knife", "with a gun", "has a knife",
        "has a gun", "threatening me", "being attacked", "stabbed",
        # told by what is seen: a heart attack, a stroke, a fall, no air, poisoning, a break-in
        "clutching his chest", "clutching her chest", "holding his chest", "holding her chest", "face is drooping",
        "drooping on one side", "face has dropped", "face dropped", "can't talk properly", "can't speak properly", "slurred", "slurring", "won't answer me", "isn't answering", "lips are blue",
        "lips are going blue", "lips going blue", "turning blue", "gone blue", "very drowsy", "knocked out for", "knocked out cold", "knocked unconscious",
        "going to pass out", "about to pass out", "ripped open", "kick my door in", "kick the door in",
        "kicking my door", "kicking the door")
PEOPLE = ("husband", "wife", "son", "daughter", "child", "kid", "baby", "mom", "mum", "dad", "mother", "father", "neighbor",
          "neighbour", "someone", "somebody", "person", "man", "woman", "friend", "grandma", "grandpa", "tenant", "lady", "guy",
          "grandmother", "grandfather", "elderly", "partner", "boyfriend", "girlfriend", "boy", "girl", "toddler",
          "grandson", "granddaughter", "children",
          "my face", "my throat", "patient")
ANIMALS = ("dog", "cat", "puppy", "kitten", "pet", "rabbit", "bird", "horse", "animal", "parrot", "hamster", "guinea pig")
# Words a person hears as urgency, whatever the problem.
URGENCY = ("getting worse", "won't stop", "can't stop", "everywhere", "right now", "tonight", "really bad", "a lot of blood",
           "bleeding", "baby", "newborn", "freezing", "pouring", "gushing", "spreading", "asap", "as soon as possible",
           "help me", "please hurry", "scared", "panicking", "not safe", "can't lock", "won't turn off", "can't turn off",
           "won't shut off", "can't shut off", "overflowing", "about to overflow", "full blast",
           # an essential service lost, or a body that cannot get up
           "no power", "no electricity", "no lights", "no heat", "no heating", "no water", "won't get up", "can't get up",
           "can't stand", "won't stand", "can't walk",
           # water reaching the home below
           "below me", "under me", "below us", "under us", "flat below", "apartment below", "unit below", "flat under",
           "apartment under", "unit under")
# Said outright: nothing is wrong tonight (near an emergency this takes a message without asking).
CALM_SAID = ("not urgent", "nothing urgent", "no rush", "no hurry", "not an emergency", "isn't an emergency", "no emergency",
             "not an emergency", "non emergency", "it can wait", "when you get a chance", "whenever you can", "not a big deal", "nothing major",
             "nothing serious", "seems fine", "otherwise fine", "doesn't hurt", "does not hurt", "not hurting", "no pain",
             "not in pain", "not in any pain", "without any pain", "pain free", "still eating", "eating fine", "eating normally",
             "playing fine", "acting normal", "acting normally", "just thought you should know", "just so you know",
             "fine for now", "just annoying", "just looks", "running out", "running low", "usual self", "otherwise normal",
             "normal otherwise", "otherwise okay", "otherwise ok", "otherwise happy", "not painful", "doesn't bother",
             "not bothering", "fine now", "happily", "hasn't changed", "not getting worse", "no worse", "wanted to mention",
             "no leak", "not leaking", "eating and playing", "wagging", "just once",
             "only once", "he's fine", "she's fine", "he's okay", "she's okay", "he's ok", "she's ok")
# The caller says outright it is no emergency ("it's not an emergency, but it is urgent")
NO_EMERGENCY = ("not an emergency", "isn't an emergency", "is not an emergency", "no emergency", "not a emergency", "non emergency",
                "non-emergency", "nothing's wrong", "nothing is wrong")
# Going on for a while: a message for the team, unless it is plainly an emergency.
CHRONIC = ("for a few days", "for a couple of days", "for a week", "for days", "for weeks", "for months", "since last week",
           "a while", "for ages", "for two days", "for three days", "a month", "last year", "for years")
CALM = (*CALM_SAID, "a bit", "a little", "slightly", "slight", "mild", "tiny", "for a few days", "for a couple of days",
        "for a week", "for days", "since last week", "for months", "a while")
# An explicit request to be called back: a message, even about an FAQ's topic ("get back to me about a parking permit").
CALLBACK = ("call me back", "call me", "ring me", "ring me back", "give me a call", "get back to me", "have someone call",
            "someone call", "somebody call", "someone ring", "somebody ring", "have the office", "have somebody",
            "have someone", "let the office know", "tell the office", "let them know", "tell them i called", "tell the manager", "contact me",
            "phone me", "reach me", "call me about", "ring me about", "leave a message", "take a message", "pass a message",
            "pass on a message", "leave a note", "message for", "someone check", "somebody check", "someone look into",
            "somebody look into", "let dr", "let doctor", "let the vet know", "let the dentist know", "let her know",
            "let him know", "tell dr", "please tell", "ask dr", "ask the vet to", "ask the dentist to")
# Advice or a recommendation the business does not give on the phone ("which pet insurance is the cheapest?").
ADVICE = ("recommend", "what's the best", "which is the best", "what is the best", "the best brand", "which brand",
          "is the cheapest", "what's a good name", "a good name for", "your opinion", "should i buy", "where can i buy",
          "phone number for", "the number for the", "number for a", "number for animal", "number of a", "what breed",
          "which breed", "is best for")
# A sales call, a robocall or a survey: not a caller the business serves.
SALES = ("special offer", "we're offering", "we are offering", "offering a free", "free trial", "free inspection",
         "free inspections", "free assessment", "free assessments", "free roof", "free cruise", "free gift", "press one",
         "press 1", "press nine", "press 9", "press two", "press 2", "extended warranty", "car's warranty", "vehicle's warranty",
         "car warranty", "vehicle warranty", "lower your", "lower rate", "save you money", "wholesale", "our services",
         "our rates", "our pricing", "our products", "our software", "we help clinics", "we help businesses",
         "we help practices", "business listing", "google listing", "listing department", "seo", "marketing", "survey",
         "compensation", "accident you had", "wasn't your fault", "we buy", "cash for your", "been selected",
         "congratulations", "courtesy call", "automated message", "recorded message", "important message about",
         "interest rate", "energy contract", "electricity contract", "energy supplier", "electricity supplier",
         "business electricity", "business energy", "broadband", "solar panel", "solar panels", "are you the owner",
         "business owner", "decision maker", "we sell", "supplies direct", "your neighbourhood", "your neighborhood",
         "in your area", "get you to the top", "ask you some questions", "ask you a few questions", "school project",
         "research project", "a company that sells", "a company that does", "a company that provides", "a company that makes",
         "leasing company", "whoever buys", "whoever does your purchasing", "whoever handles your", "in charge of purchasing",
         "handles your purchasing", "your purchasing")
# Questions asking for information ("how do I test my smoke alarm?", "who supplies the gas?"):
# never taken for an emergency without asking.
ASKING = ("how do i", "how can i", "how often", "how much", "how long", "can i", "could i", "may i", "am i allowed", "are we allowed", "is it ok",
          "is it okay", "is it allowed", "do you have", "do you do", "does the", "who supplies", "who is the", "what is the",
          "what's the", "when is", "when do", "where do", "where is", "is there a", "are there")
NOT_DANGER = ("fire alarm test", "fireplace", "fire door", "fire escape", "fire extinguisher", "fire pit", "fire safety",
              "fire inspection", "can i smoke", "allowed to smoke", "smoke free", "non smoking", *(f"smoke {d}{v} {b}" for d in ("alarm", "detector") for v in ("", " is", " keeps") for b in ("beeping", "chirping")),
              "needs a battery", "needs a new battery", "low battery", "smoke alarm battery", "smoke detector battery", "chirping",
              "little beep", "a beep every", "beeps every", "battery i think", "new battery",
              # a fire lit to keep warm ("the heating's off but we've got the fire on")
              "got the fire on", "have the fire on", "put the fire on", "with the fire on", "by the fire",
              *(f"{v} the {k} fire on" for v in ("got", "have", "put", "with", "had", "turned") for k in ("electric", "gas", "log", "coal")),
              "electric fire on", "gas fire on", "log fire going", "coal fire going",
              # danger said to be absent: "there's no smoke or fire or anything, it's just the beeping"
              "no smoke", "no fire", "no flames", "no smell of gas", "no gas smell", "can't smell gas", "don't smell gas",
              "nothing's burning", "nothing burning", "not on fire")


def sales(w: Words) -> bool:
    """A sales call, robocall or survey."""
    return w.has(*SALES)


# no message after all ("never mind, I'll ring back")
NEVER_MIND = ("never mind", "nevermind", "forget it", "forget about it", "don't worry", "cancel that", "cancel the message",
              "no message")
# the caller will see to it themselves ("no, it can wait, I'll ring back tomorrow"): no message offered again
NO_MESSAGE = ("i'll call", "i'll ring", "i'll phone", "call back", "ring back", "phone back", "portal", "work order", "online",
              "no message", "don't need a message", "no thanks", "no thank you", "don't worry about a message",
              "don't worry about it", "not to worry", "no need")
# ... but the caller does want one ("no, it can wait, but please take a message")
MESSAGE_WANTED = ("take a message", "take my details", "leave a message", "leave my details", "call me back", "ring me back",
                  "have someone call", "get someone to call", "can someone call", "could someone call")
CONFIRMING = ("that's all correct", "that's all right", "that's all fine", "that's all good", "that's it exactly",
              "that is all correct", "that's everything correct")  # agreeing to what was read back, not leaving


def closing(w: Words) -> bool:
    if w.has(*GOODBYE) and not (w.has(*CONFIRMING) and not w.has("bye", "goodbye", "bye bye")):
        return True
    thanks = w.has("thanks", "thank you", "cheers")
    return thanks and all(x in THANKS_ONLY for x in w.words)


# "is Mick about?", "is Dr Okafor still there?", "is Sarah in today?": someone asked for by name
_IS_IN = re.compile(r"^(?:\s*(?:hi|hello|hey|yeah|oh|um|uh|sorry|now then|morning|evening|afternoon|there)\b[\s,]*)*"
                    r"is (?:(?:dr|doctor|mr|mrs|ms|miss) )?([a-z']+)(?: [a-z']+)? (?:still )?"
                    r"(?:there|in|about|around|available|free|working|on tonight|back)\b")
_NOT_SOMEONE = {"there", "anyone", "anybody", "someone", "somebody", "everyone", "everybody", "nobody", "water", "heat",
                "heating", "power", "gas", "electric", "electricity", "one", "office", "surgery", "clinic", "practice",
                "internet", "wifi", "lift", "elevator", "anything", "cover", "it", "that", "this", "tonight", "tomorrow"}


_TALK_TO = re.compile(r"\b(?:can|could|may) i (?:please )?(?:speak|talk) (?:to|with) (?:(?:dr|doctor|mr|mrs|ms|miss) )?([a-z']+)")


def wants_person(w: Words) -> bool:
    for m in (_IS_IN.search(w.text.strip()), _TALK_TO.search(w.text)):
        if m and m.group(1) not in STOP and m.group(1) not in NOT_NAME and m.group(1) not in _NOT_SOMEONE:
            return True  # a word that may be a name ("Mick"), not "is Tuesday free", "is parking available"
    if w.has("real person", "human", "operator", "representative", "live person", "speak to someone", "talk to someone"):
        return True
    return w.has(*REACH) and w.has(*PERSON)


def emergency(w: Words, profile: Profile) -> bool:
    return bool(profile.emergency.keywords) and w.has(*profile.emergency.keywords)


# an emergency said not to be one ("I'm not locked out though", "it isn't leaking any more")
_DENIED_WORDS = ("locked out", "leaking", "leak", "flooding", "flooded", "bleeding", "swollen", "swelling", "in pain",
                 "sparking", "burst", "overflowing", "dripping through", "coming through")


def denied(w: Words, profile: Profile) -> bool:
    """The caller says the emergency is not happening: "not locked out", "isn't leaking"."""
    m = _denial(profile.emergency.keywords).search(w.text)
    return m is not None and not re.search(r"^\s+yet\b|\bbut\b", w.text[m.end():])  # not "not burst yet but it's flooding"


@functools.lru_cache(maxsize=64)  # one per business's keywords, built once
def _denial(said: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(re.escape(k.lower()) for k in (*said, *_DENIED_WORDS) if k.strip())
    middle = r"(?!(?:stopped|just|only|even|merely|yet|been|had|ever|quite)\b)\w+\s+"  # not "not just leaking, it's pouring"
    return re.compile(rf"\b(?:not|isn't|isnt|aren't|wasn't|no longer)\s+(?:{middle})?(?:{words})\b")


def asking(w: Words) -> bool:
    """The caller opens with a question for information."""
    return any(w.text.startswith(f" {q} ") for q in ASKING)


# a danger said to be absent: "no sparks or burning smell or anything", "without any smoke"
_NEGATORS = {"no", "without", "nor", "neither"}  # not "never": "never seen so much smoke"
_SPAN_ENDS = {"but", "just", "though", "it's", "its", "i", "i'm", "im", "we", "the", "there", "there's", "he", "she", "they",
              "my", "our", "his", "her", "now", "so", "because", "cause", "then", "is", "are", "was", "can", "one", "body",
              "and", "with", "plus", "also", "coming"}  # "no heat and a gas smell": the danger after "and" is said


def _unsaid(raw: str) -> str:
    """The words with what is said to be absent taken out ("no sparks or burning smell")."""
    out: list[str] = []
    skip = 0
    for tok in re.findall(r"[\w']+|[^\w\s]", raw.lower()):
        if skip and tok not in _SPAN_ENDS and tok.isalnum() | ("'" in tok):
            skip -= 1
            continue
        skip = 0
        out.append(tok)
        if tok in _NEGATORS:
            skip = 6
    return " ".join(out)


def danger(w: Words) -> bool:
    if w.has(*NOT_DANGER):
        return False
    return _danger(Words(_unsaid(w.raw)))


def _danger(w: Words) -> bool:
    if w.has(*FIRE_GAS) and not (asking(w) and not w.has(*[x for x in FIRE_GAS if x != "fire"])):
        return True  # a bare "fire" in a question ("do you have a fire exit plan?") is not one
    if w.has(*CHILD) and w.has(*SWALLOWED) and w.has(*POISONS):
        return True  # "the dog got into the rat poison and my two-year-old might have eaten some too": the child first
    return w.has(*BODY) and (w.has(*PEOPLE) or not w.has(*ANIMALS))


CHILD = ("toddler", "year-old", "year old", "my son", "my daughter", "little boy", "little girl", "my boy", "my girl", "my kid",
         "the kids", "my baby", "the baby", "my child", "my grandson", "my granddaughter")
SWALLOWED = ("swallowed", "eaten", "ate some", "ate one", "ate a", "had some", "got any", "got some", "drank", "drunk some",
             "in his mouth", "in her mouth", "licked", "chewed")
POISONS = ("poison", "bait", "pills", "tablets", "medication", "medicine", "antifreeze", "bleach", "chemical", "chemicals", "slug pellets",
           "battery", "batteries", "detergent", "cleaner", "weed killer", "weedkiller", "paracetamol", "ibuprofen")


def asks_address(w: Words) -> bool:
    if w.has(*NOT_ADDRESS):
        return False
    if w.has(*ADDRESS_STRONG):
        return True
    return w.has("where", "where's", "whereabouts") and w.has(*PLACES)


def asks_hours(w: Words) -> bool:
    if w.has(*HOURS):
        return True
    return w.has("when", "what time") and w.has("come in", "come by", "drop by", "drop in", "visit", "available") or w.has("holiday", "christmas")


STEM_PREFIX = 7  # letters two long words must share to be one word ("vaccinated", "vaccination")


def _same_word(keyword: str, content: set[str]) -> bool:
    """A one-word keyword the caller said in another form than the stemmer joins."""
    k = keyword.lower()
    return " " not in k and len(k) >= STEM_PREFIX and any(len(c) >= STEM_PREFIX and c[:STEM_PREFIX] == k[:STEM_PREFIX] for c in content)


def best_faq(w: Words, faqs: tuple[Faq, ...]) -> tuple[int, float]:
    """The FAQ whose keywords (and question words) the caller used most: (index, score);
    index -1 below the bar."""
    best, score = -1, 0.0
    content = w.content()
    for i, faq in enumerate(faqs):
        s = 2.0 * sum(w.count(k) or _same_word(k, content) for k in faq.keywords)
        asked = Words(faq.question).content() - {"you", "we"}
        s += len(content & asked) * 0.75
        if s > score:
            best, score = i, s
    return (best, score) if score >= 1.5 else (-1, score)


def names_us(w: Words, profile: Profile) -> bool:
    """ "is this Brightside Dental?": asks whether this is the business, by a word of its name."""
    name = Words(profile.name).content() - {"management", "clinic", "practice", "street", "company", "office", "the"}
    return _asks_is_this(w) is not None and bool(w.content() & name)


def _asks_is_this(w: Words) -> str | None:
    """What follows "is this" / "have I reached" when the caller opens with it ("oh hi, is
    this the groomers?" -> "the groomers"); None otherwise."""
    for lead in (" is this ", " is that ", " have i reached ", " am i through to "):
        at = w.text.find(lead)
        if at >= 0 and len(w.text[:at].split()) <= 3:
            return w.text[at + len(lead):]
    return None


ASKS_WHO = ("am i talking to", "am i speaking to", "am i speaking with", "is this a real", "is this a machine", "is this a robot",
            "are you a robot", "are you real", "are you a person", "are you human", "is this automated", "who am i speaking")
GENERIC = {"right", "number", "office", "place", "person", "real", "machine", "robot", "human", "line", "still", "open",
           "correct", "main", "phone", "somebody", "someone", "anyone", "it", "that", "you", "actually",
           # the kind of place any of our businesses is ("is this the dentist on harbour road?" asks whether it is us)
           "dentist", "dentists", "dentist's", "dental", "vet", "vets", "vet's", "veterinary", "veterinarian", "clinic",
           "landlord", "landlords", "landlord's", "management", "property", "leasing", "surgery", "practice", "on", "in"}


NOT_A_NAME = {"a", "an", "where", "what", "when", "how", "who", "why", "about", "for", "going", "ok", "okay", "something",
              "normal", "serious", "urgent", "bad", "right", "still", "open", "correct", "it", "because", "covered", "free",
              "possible", "true", "real", "safe", "also", "just", "really", "actually", "all", "your", "you", "my", "our",
              "number", "line", "office", "place", "person", "machine", "robot", "human", "automated", "recorded", "live",
              "thing", "on", "working", "ringing", "emergency", "after", "out", "over", "done", "too", "enough", "worth"}


def names_another(w: Words, profile: Profile) -> bool:
    """ "is this Luigi's pizza?": asks for a place that is not this business."""
    after = _asks_is_this(w)
    if after is None or names_us(w, profile) or w.has(*ASKS_WHO):
        return False
    first = after.split()[0] if after.split() else ""
    ours = Words(profile.address).content()  # "is this the dentist on harbour road?": our street
    named = first in ("the", "not") or first.endswith("'s")  # "the groomers", "luigi's pizza"
    # or a short name of its own ("is this comcast?", "is this Bristol Royal Infirmary?"), not a question about us
    named = named or (len(after.split()) <= 4 and first not in NOT_A_NAME)
    return named and bool(Words(after).content() - GENERIC - ours - {"the", "a", "not"})


def intent(w: Words, profile: Profile) -> tuple[str, int]:
    """(intent, FAQ index or -1) by keywords, in the order the receptionist always used."""
    said = _said_outright(w, profile)
    if said is not None:
        return said, -1
    faq, faq_score = best_faq(w, profile.faqs)
    if asks_hours(w) and faq_score < 2:
        return "hours", -1
    if asks_address(w) and faq_score < 2:
        return "address", -1
    if faq >= 0:
        return "faq", faq
    return _weaker(w, profile), -1


def _said_outright(w: Words, profile: Profile) -> str | None:
    """The intents whose words decide before any FAQ: danger, sales, an emergency, who we
    are, a person, goodbye, a wrong number, "say again", a message."""
    if danger(w):
        return "emergency"
    if sales(w):
        return "sales"
    if emergency(w, profile):
        return "emergency"
    if w.has(*ASKS_WHO) or names_us(w, profile):
        return "identity"
    if w.has(*WRONG_SAID):  # "I've dialled the wrong number, I was trying to reach my doctor's": not a person here
        return "wrong_number"
    if wants_person(w):
        return "person"
    if closing(w):
        return "goodbye"
    if w.has(*WRONG_NUMBER) or names_another(w, profile):
        return "wrong_number"
    if w.has(*REPEAT):
        return "repeat"
    if w.has(*MESSAGE, *CALLBACK, "change my", "update my", "move my"):
        return "message"
    return None


def _weaker(w: Words, profile: Profile) -> str:
    """No FAQ either: a task for the team, our street named, who we are, a hello, or unknown."""
    if w.has(*STAFF_TASKS):
        return "task"
    place = Words(profile.address).content() - {"road", "street", "floor", "suite"}
    if w.content() & place and len(w.content()) <= 3 and not w.has(*NOT_ADDRESS):
        return "address"
    if w.has(*IDENTITY) and not w.has(*NOT_ADDRESS):
        return "identity"
    if w.has(*HERE) and len(w.content()) <= 1:
        return "hello"
    return "unknown"


_TRADE = {"vet", "vets", "veterinary", "dental", "dentist", "dentists", "plumbing", "plumber", "plumbers", "heating", "property",
          "properties", "management", "clinic", "surgery", "practice", "office"}  # "is this Oakwood vets?": another word for it


def names_business(w: Words, business: str) -> bool:
    """The caller said the business's name ("is that Brightside Dental?": its first distinctive
    word, "Brightside"), and not another business's that shares it ("is this Oakwood Pet Grooming?")."""
    name = Words(business)
    first = next((x for x in name.words if x in name.content() and len(x) >= 4), "")
    if not (first and w.has(first) and w.has("is this", "is that", "this is", "that is", "is it", "through to", "have i got",
                                             "have i reached")):
        return False
    at = w.words.index(first) if first in w.words else len(w.words)
    nxt = w.words[at + 1] if at + 1 < len(w.words) else ""
    return not nxt or nxt in name.words or nxt in STOP or nxt in _TRADE

