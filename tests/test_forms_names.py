"""Callers' names as they say them (bot/names.py): names that are also words, repeats and
self-corrections, spellings, hyphens and apostrophes, titles as said, a pet's or a partner's
name that is not the caller's, and what is never a name."""

from __future__ import annotations

import pytest

from bot.names import bare_name, merge_name, name_in, refuses_name, without_intro


@pytest.mark.parametrize(("text", "name"), [
    ("hi, um, this is Will Hunt, could someone call me back about the kitchen tap", "Will Hunt"),
    ("this is will hunt, could someone call me back", "Will Hunt"),
    ("yeah hi, it's Bill, Bill Foster, I need someone to call me", "Bill Foster"),
    ("my name is Will, Will Turner, I'd like someone to call me back", "Will Turner"),
    ("hi this is, um, Dan, Daniel Okafor, I wanted to leave a message", "Daniel Okafor"),
    ("the name's Okonkwo, Chidi Okonkwo", "Chidi Okonkwo"),
    ("hello, my name is Anne-Marie Dubois, I'd like", "Anne-Marie Dubois"),
    ("hi it's Liam O'Connor from apartment 12B", "Liam O'Connor"),
    ("hi, it's Mary-Jane Watson-Smith, can I leave a message", "Mary-Jane Watson-Smith"),
    ("hi it's Dr. Patel from 7C, I'd like to leave a message", "Dr Patel"),
    ("I think I was charged twice, it's Mrs Edith Crane", "Mrs Edith Crane"),
    ("good evening, my name is Mr Tanaka, apartment 11", "Mr Tanaka"),
    ("Catherine Bell here, can you pass a message", "Catherine Bell"),
    ("hi my name is Ann, Ann with an e, Anne Fowler, can someone call me", "Anne Fowler"),
    ("can I leave a message, I'm Priya Nair, it's about my retainer, it's come loose", "Priya Nair"),
    ("608 555 0112, Laura Chen, can someone call me about Bella's spay appointment", "Laura Chen"),
    ("could you take a message, tell them it's pete rossi from the third floor", "Pete Rossi"),
    ("my name is alex, that's alex morgan, and it's about transferring my lease", "Alex Morgan"),
    ("hi this is a message for the manager from linda price regarding the deposit", "Linda Price"),
    ("hiya message for reception please it's about my payment plan, it's chloe", "Chloe"),
])
def test_a_name_said_with_the_request(text, name):
    assert name_in(text) == name


@pytest.mark.parametrize("text", [
    "hi, I'd like to leave a message about my cat's dental, her name's Mittens",  # the cat's
    "my dog's name is Rex and he needs his booster",
    "hiya it's about my boiler service, you did it last year and it's due again",
    "it's been off since yesterday and it's nineteen degrees outside",
    "I've lost my keys and I can't get in, and it's midnight",
    "i'm locked out", "this is urgent", "i'm having trouble with my boiler", "it's marc with a c",
    "one of the cupboard doors fell off its hinge", "I've got one tooth that's darker than the others",
    "its pitch black in the whole building", "hello, I'm ringing on behalf of my wife, Helen Ward, she's a patient",
    "it's Marshall Roofing here, we're at 60 Ring Road", "it's castle home insurance calling about a claim",
    "my office line is 0113 496 0333 but I'm rarely at my desk",
])
def test_words_that_are_not_a_name(text):
    assert name_in(text) is None


@pytest.mark.parametrize(("text", "name"), [
    ("Siobhan, that's S I O B H A N, Kelly", "Siobhan Kelly"),
    ("Aoife, A O I F E, Brennan", "Aoife Brennan"),
    ("Sean, S E A N, Maguire, M A G U I R E", "Sean Maguire"),
    ("my name is Joanna Wszolek, that's W S Z O L E K", "Joanna Wszolek"),
    ("no, it's Kirsten, K I R S T E N", "Kirsten"),
    ("oh, uh, it's, um, Tom, Tom Baker", "Tom Baker"),
    ("oh my name? it's Rose Taylor", "Rose Taylor"),
    ("it's Grace Hill", "Grace Hill"),
    ("it's Mrs Lindqvist", "Mrs Lindqvist"),
    ("sorry, it's Marc with a c", "Marc"),
    ("Tom, 555 867 5309", "Tom"),
    ("james whitfield w h i t f i e l d", "James Whitfield"),
    ("no, my surname is Nowak not Novak", "Nowak"),
    ("it is spelt S M Y T H E", "Smythe"),
    ("my first name is John, surname Smith, it's about my bridge", "John Smith"),
    ("john smith", "John Smith"),
])
def test_a_name_given_when_asked(text, name):
    assert name_in(text, asked=True) == name


@pytest.mark.parametrize("text", ["yes", "yes please", "the caller", "my sink is clogged", "it's about my rent", "i'm in flat 3",
                                  "I'd rather not give my name", "LS6 2AB", "my dog bit my little boy on the face",
                                  "is it possible for someone to ring me", "will my pet insurance cover the visit",
                                  "what's the rule on cats here", "hi my oven hasn't worked for a week", "is Maria home"])
def test_answers_that_are_not_a_name_even_when_asked(text):
    assert name_in(text, asked=True) is None


def test_a_name_alone_out_of_turn_and_nothing_else():
    assert bare_name("Grace Hill", whole=True) == "Grace Hill"
    assert bare_name("no, use my mobile, five five five", whole=True) is None
    assert bare_name("my sink is clogged", whole=True) is None


def test_a_refusal_and_a_one_word_correction():
    assert refuses_name("I'd rather not give my name") and not refuses_name("it's Tom")
    assert merge_name("Mark Jensen", "Marc") == "Marc Jensen"
    assert merge_name("Catherine Bell", "Katherine") == "Katherine Bell"
    assert merge_name("Mark Jensen", "Sue Brown") == "Sue Brown"


@pytest.mark.parametrize(("text", "name"), [
    ("hey, it's Omar Haddad, number 608-555-0456, could someone call me Monday", "Omar Haddad"),  # a day after "call me"
    ("hi it's Priya Nair, call me tomorrow if you can", "Priya Nair"),
    ("can you take a message, I'm Marc Dubois, that's Marc with a c", "Marc Dubois"),  # the spelling keeps the surname
    ("it's Mark Jones, sorry, it's Marc with a c", "Marc Jones"),
    ("I'm Tom, I'm Tom Reed", "Tom Reed"),
])
def test_a_full_name_is_not_undone_by_a_lone_word_after_it(text, name):
    assert name_in(text, asked=True) == name


@pytest.mark.parametrize(("text", "name"), [
    ("yeah this is Mr Okafor Daniel Okafor in 4C", "Daniel Okafor"),  # said again in full: the second time
    ("it's Fiona McAllister, Mrs McAllister", "Fiona McAllister"),  # a shorter repeat keeps the full name
    ("evening it's gaz, gareth moss from moss building", "Gareth Moss"),  # a short name, then the name in full
    ("sure it's bob, uh robert klein", "Robert Klein"),
    ("hi it's Priya, Northside Pharmacy", "Priya"),  # a company after it is no surname
    ("it's Raj, Leeds Road, the Co-op", "Raj"),  # nor a street
])
def test_a_name_said_twice_is_the_fuller_saying(text, name):
    assert name_in(text, asked=True) == name


def test_yes_please_before_a_name_is_not_part_of_it():
    assert bare_name("yes please, Derek Firth", whole=True) == "Derek Firth"


def test_the_surname_s_said_as_one_word_is_a_surname():
    assert name_in("no sorry the surname's Hendry, ending in a Y", asked=True) == "Hendry"
    assert merge_name("Rob Hendrie", "Hendry") == "Rob Hendry"


@pytest.mark.parametrize(("text", "name"), [
    ("it's Tess, like the girl in the book, Tess Ogunbiyi", "Tess Ogunbiyi"),  # an explanation between two tries
    ("oh sorry, my name, Kyle Brennan", "Kyle Brennan"),
    ("I'm Pickle's dad, um, Owen, Owen Marsh", "Owen Marsh"),  # who the caller is, then the name
    ("I'm her son, Felix Adeyemi", "Felix Adeyemi"),
    ("put it under Chase Van der Berg please", "Chase Van der Berg"),
    ("you can put Lina Al-Masri", "Lina Al-Masri"),
    ("right it's Niamh Ó Súilleabháin", "Niamh Ó Súilleabháin"),
    ("this is Ana de la Cruz", "Ana de la Cruz"),
    ("hi, Tariq Haddad, can someone come and fix the gate", "Tariq Haddad"),  # a greeting, then the name alone
    ("yeah hi its Carol no sorry its for my dad its Stan Whitlock he needs a repair", "Stan Whitlock"),
    ("well you want her name I guess, Ffion, F F I O N, Ffion Hughes", "Ffion Hughes"),  # spelled with no cue
    ("it's Bob, well, Robert, Robert Lyle", "Robert Lyle"),  # "well": the name said next replaces it
    ("this is Alex, well Alexandra, Alexandra Kim", "Alexandra Kim"),
    # a name to put the message under, said as a change of the one given
    ("oh could you put my full name, Harriet Olawale", "Harriet Olawale"),
    ("could you put Dennis Moorcroft, that's what the account's under", "Dennis Moorcroft"),
    ("sorry can you put it under my dad's name, it's his flat, Viktor Sokolov", "Viktor Sokolov"),
    ("could you put my husband's name on it, Tomasz Wrobel, he's the one at home", "Tomasz Wrobel"),
    ("ok, can you tell her Margot Lindgren called about Biscuit's bandage", "Margot Lindgren"),
    ("right, tell him Alfie Dunne rang about the quote", "Alfie Dunne"),
    ("oh wait put her name, Beatrix Holloway, it's her dog", "Beatrix Holloway"),
    ("can you use his name instead, it's Walter Price", "Walter Price"),
])
def test_names_given_the_long_way_round(text, name):
    assert name_in(text) == name


@pytest.mark.parametrize("text", [
    "I'm ringing on behalf of my wife, she's a patient",
    "the door came off its hinge again",
    "can I leave my name and number",
    "the code is, A B C, no",
    # how the caller is, or how the problem is, after "I'm" / "it's": not a name
    "hello, I'm expecting, do I have to pay for a scale and polish",
    "the pipes are knocking all night, it's proper frightening",
    "no worries. could you pass a message on anyway",
    "the stain's not growing, it's dry, just want someone to look",
    "i'm shattered, it's been a long day, the boiler's gone again",
    "can you put a new washer in my tap",
    "there's a lump on her leg, I'm scared it's cancer",
    "tell her it's urgent please",
    "the shower tray's cracked and the grout's all black, it's grim",
    # how the caller is
    "I don't know, it doesn't hurt, it's more how it looks, so no I guess it can wait",
    "oh right it's after hours duh. can you tell her it's about the parking permit",
    "I can't reach it up there, I'm eighty-two, somebody can come tomorrow",
])
def test_what_the_long_way_round_does_not_make_a_name(text):
    assert name_in(text) is None


def test_a_surname_said_as_one_joins_the_first_name():
    assert merge_name("Declan", "Whelan", "oh and the surname's Whelan, W H E L A N") == "Declan Whelan"
    assert merge_name("Tomasz", "Kowalczyk", "can you put my last name too, it's Kowalczyk") == "Tomasz Kowalczyk"
    assert merge_name("Declan", "Dylan", "no, it's Dylan") == "Dylan"  # no surname said: a correction


@pytest.mark.parametrize(("text", "name"), [
    ("yeah, go on then. Fatima Begum", "Fatima Begum"),
    ("yeah, can you get the office to ring me? Rajesh Sharma", "Rajesh Sharma"),
    ("can you send someone round? Leeds Road", None),  # a street, not a name
    ("please call me. Thank You", None),
    ("could someone call me back?", None),  # nothing after the last mark
    ("my wife, Helen Ward", None),  # after a comma it is someone else's
])
def test_a_name_said_as_a_sentence_of_its_own_at_the_end(text, name):
    assert name_in(text) == name


def test_a_first_name_corrected_keeps_the_surname_said_again():
    assert merge_name("Christoph Nowicki", "Krzysztof", "no, the name, it's Krzysztof, K R Z Y S Z T O F. Nowicki is fine") == "Krzysztof Nowicki"
    assert merge_name("Eefa Byrne", "Aoife", "it's A O I F E, Aoife, and Byrne is B Y R N E") == "Aoife Byrne"
    assert merge_name("Tom Reed", "Sam", "no it's Sam") == "Sam"  # nothing said again, nothing alike: a new name


@pytest.mark.parametrize(("text", "name"), [
    ("It's Mark. Mark Dubois.", "Mark Dubois"),  # the first name, then the whole name
    ("Oh, no, it's Marc with a C, not a K. Marc Dubois.", "Marc Dubois"),
    ("My name is Ann. Ann Lee is my mum.", "Ann"),  # not a piece of its own
])
def test_a_first_name_then_the_full_name_is_the_full_name(text, name):
    assert name_in(text, asked=True) == name


def test_a_correction_alike_the_word_it_corrects_replaces_that_word_whatever_else_is_said():
    assert merge_name("Catherine Lowe", "Katherine", "no, it's Katherine with a K, not catherine") == "Katherine Lowe"
    assert merge_name("Chidi Okonko", "Okonkwo", "sorry, my surname is Okonkwo, not Okonko") == "Chidi Okonkwo"


@pytest.mark.parametrize(("text", "name"), [
    ("hiya its maureen clegg", "Maureen Clegg"),  # a greeting, then "its" and a name: the caller's opening
    ("its liam connolly actually how much is your call out charge", "Liam Connolly"),
    ("yeah its radiator valve", None),  # an answer, not an opening
    ("its pitch black in here", None),
    ("hi its the boiler", None),
])
def test_a_lowercase_its_opens_with_a_name_only_as_an_opening(text, name):
    assert name_in(text) == name


def test_a_district_after_a_street_is_no_name():
    assert name_in("a quote for a new bathroom, at 41 Harrogate Road, Chapel Allerton, LS7 4LA.") is None


@pytest.mark.parametrize(("text", "left"), [
    ("Hello, this is Dr Adeyemi in 9B. The intercom at the front door doesn't ring our flat.", "The intercom at the front door doesn't ring our flat."),
    ("hello this is dr lindqvist from harbourside orthodontics i'm calling about a referral", "i'm calling about a referral"),
    ("Hi, this is Mark Davis, could someone call me back about my lease?", "could someone call me back about my lease?"),
    ("hi my name is john smith and my basement is flooding", "my basement is flooding"),
    ("it's Bob Stone, he collapsed and he is not breathing", "he collapsed and he is not breathing"),
    ("hi it's pitch black in here the power is out", "hi it's pitch black in here the power is out"),  # no name: as it was
    ("this is Sarah", "this is Sarah"),  # nothing after it: as it was
])
def test_what_follows_an_introduction_is_what_the_caller_wants(text, left):
    assert without_intro(text) == left


@pytest.mark.parametrize(("text", "name"), [
    ("its nakamura um first name is yumi", "Yumi Nakamura"),
    ("Oyelaran. First name Bisi.", "Bisi Oyelaran"),
    ("delacroix um and the first name is marie", "Marie Delacroix"),
    ("my first name is John, surname Smith", "John Smith"),
])
def test_the_surname_then_the_first_name_is_the_name_in_order(text, name):
    assert name_in(text, asked=True) == name


@pytest.mark.parametrize(("text", "name"), [
    ("gillian pell g i double l i a n p e double l", "Gillian Pell"),  # the whole name spelled after it
    ("deepak d'mello d apostrophe m e double l o", "Deepak D'Mello"),
    ("ciaran o'neill c i a r a n o apostrophe n e i double l", "Ciaran O'Neill"),
    ("It's for my mum, so put her name: Eileen Russell. R-U-double S-E-double L.", "Eileen Russell"),
    ("his name's eamon fitzgerald e a m o n", "Eamon Fitzgerald"),  # the person the message is for, when asked
    ("its callum gething g as in golf e t h as in hotel i n g", "Callum Gething"),
    ("its not urgent at all its steve barker 14 ashfield road", "Steve Barker"),
])
def test_a_name_spelled_the_ways_people_spell(text, name):
    assert name_in(text, asked=True) == name


@pytest.mark.parametrize("text", ["yes that's right cheers", "aye ta", "ta ra then", "one of the cupboard doors fell off its hinge"])
def test_thanks_and_goodbyes_are_no_name_even_when_asked(text):
    assert name_in(text, asked=True) is None


def test_a_double_barrelled_name_spelled_in_its_parts_is_said_once():
    assert name_in("darnell hughes-whitfield hughes hyphen whitfield", asked=True) == "Darnell Hughes-Whitfield"


def test_a_surname_of_several_words_said_again_keeps_the_full_name():
    said = "De la Cruz, that's D E, then L A, then C R U Z"
    assert merge_name("Rosa De la Cruz", name_in(said, asked=True) or "", said) == "Rosa De la Cruz"



@pytest.mark.parametrize(("text", "name"), [
    ("it's niamh n i a m h doherty", "Niamh Doherty"),  # the first name spelled, then the surname
    ("yeah tadhg t a d h g o'connell", "Tadhg O'Connell"),
    ("my name is ravi r a v i shankar thanks", "Ravi Shankar"),
])
def test_a_first_name_spelled_then_the_surname(text, name):
    assert name_in(text, asked=True) == name


@pytest.mark.parametrize(("text", "name"), [
    ("Yvonne Marsh. His name's Terry Marsh, it's his appointment.", "Yvonne Marsh"),  # the caller's own, said first
    ("it's for my husband, his name's Terry Marsh", "Terry Marsh"),  # only the person the message is for
])
def test_the_callers_own_name_said_before_someone_elses(text, name):
    assert name_in(text, asked=True) == name


@pytest.mark.parametrize(("text", "name"), [
    ("oh I'm her support worker Dionne from the housing trust, Dionne Clarke", "Dionne Clarke"),
    ("i'm the tenant's sister fran", "Fran"),
    ("Just put Mrs Abara please.", "Mrs Abara"),
])
def test_a_name_after_who_the_caller_is_or_just_put(text, name):
    assert name_in(text) == name


@pytest.mark.parametrize("text", ["plus one six four six five five five", "could you put Dr Osei on the line",
                                  "the boiler engineer said it needs a part"])
def test_words_around_a_number_or_a_request_are_no_name(text):
    assert name_in(text, asked=True) in (None, "Dr Osei")  # a person asked for is read as the person, never "Plus" or "Said"
    assert name_in(text, asked=True) != "Plus"


def test_a_nickname_explained_after_the_full_name_is_not_part_of_it():
    assert name_in("no could you put roberta kane bobbie is just what people call me", asked=True) == "Roberta Kane"


@pytest.mark.parametrize(("old", "said", "name"), [
    ("Caitlin Moss", "no its caitlin with a k k a i t l i n", "Kaitlin Moss"),  # its first letter put right
    ("Chris Ode", "chris with a k", "Kris Ode"),
    ("Shona Reid", "sorry the first name's spelt S E O N A, Seona", "Seona Reid"),  # the first name only
])
def test_a_name_put_right_at_the_read_back_keeps_the_rest(old, said, name):
    assert merge_name(old, name_in(said, asked=True) or "", said) == name


@pytest.mark.parametrize(("text", "name"), [
    ("it's Femke Van Dam, that's V A N, D A M", "Femke Van Dam"),  # the name spelled after "that's" is the same name
    ("i only know him as mr okoro o k o r o please call him", "Mr Okoro"),
])
def test_a_spelling_after_the_name_keeps_the_name(text, name):
    assert name_in(text, asked=True) == name


@pytest.mark.parametrize(("text", "name"), [
    ("Ayla Demir. That's D for delta, E, M for mike, I, R for romeo.", "Ayla Demir"),
    ("tariq hussain thats h for hotel u s s a i n", "Tariq Hussain"),
])
def test_a_surname_spelled_with_words_for_letters(text, name):
    assert name_in(text, asked=True) == name


def test_a_word_for_a_letter_only_where_it_starts_with_that_letter():
    assert name_in("i for one want it fixed", asked=True) is None


@pytest.mark.parametrize(("text", "name"), [
    ("yeah go on then its priya shah postcode ls6 2ab", "Priya Shah"),  # a detail follows the name
    ("its dev anand oh seven seven double oh nine", "Dev Anand"),
])
def test_a_name_in_passing_with_a_detail_after_it(text, name):
    from bot.names_uncued import signed_off
    assert signed_off(text, leading=True) == name


@pytest.mark.parametrize("text", ["can you take a message its fence panels", "could someone call me back its radiator valve",
                                  "its dog food on the landing 07712345678", "i'm will, calling about the will, will reading"])
def test_problem_words_after_its_are_no_name(text):
    from bot.names_uncued import signed_off
    assert signed_off(text) is None and signed_off(text, leading=True) is None
    assert name_in(text) in (None, "Will")


@pytest.mark.parametrize(("text", "name"), [
    ("hello this is mrs k obi in flat two", "Mrs Obi"),  # a title and an initial: addressed by title and surname
    ("It's Mr T. Harrow. The gutter's hanging off.", "Mr Harrow"),
    ("my name's ffion that's f f i o n and pryce p r y c e", "Ffion Pryce"),  # the surname after "and"
    ("Yes. Odile Marchetti. Odi's fine.", "Odile Marchetti"),
    ("gareth lloyd flat nine", "Gareth Lloyd"),  # the unit after the name
    ("so that's gareth lloyd booking thursday", "Gareth Lloyd"),  # what he is doing is no third name
])
def test_names_as_front_desks_hear_them(text, name):
    assert name_in(text, asked=True) == name


@pytest.mark.parametrize(("text", "name"), [
    ("it's ben no benjamin hart", "Benjamin Hart"),  # put right in one breath
    ("it's priya priya shah ding sorry shah", "Priya Shah"),  # a stray word, then the surname again
    ("yeah its carl sorry karl dixon", "Karl Dixon"),
    ("it's nora quinn quinn with two n's", "Nora Quinn"),
])
def test_a_name_put_right_in_the_same_breath(text, name):
    assert name_in(text, asked=True) == name
