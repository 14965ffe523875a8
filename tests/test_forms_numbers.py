"""Phone numbers and addresses as callers say them (bot/phone_numbers.py, bot/places.py):
groups, pairs and tens, "double" and "treble", UK and US formats, an extension, a correction
in the same breath, and never more than 15 digits."""

from __future__ import annotations

import pytest

from bot.language import MAX_DIGITS
from bot.phone_numbers import number_runs, phone_in, same_number, speak_number
from bot.places import address_in, refuses_place


@pytest.mark.parametrize(("text", "number"), [
    ("no, use my mobile, five five five, two one two, eight eight four nine", "5552128849"),
    ("no, it's oh seven nine, double one, twenty two, thirty three, forty four", "07911223344"),
    ("oh seven eight treble one, two double four, six seven", "07811124467"),
    ("oh seven seven double oh, nine double oh, one two three", "07700900123"),
    ("ring me on plus four four seven seven zero zero, nine zero zero, three two one", "+447700900321"),
    ("it's oh one one three, er, four nine six, oh oh nine one", "01134960091"),
    ("my number is area code 312, 555 0199", "3125550199"),
    ("Hi, my number is 555-247-9910, please have someone call me", "5552479910"),
    ("555.867.5309", "5558675309"),
    ("can the front desk call me at 608 555 0193 to set it up", "6085550193"),
    ("um, it's five five five, four, no sorry, five five five, three two one, oh nine eight seven", "5553210987"),
    ("yeah it's 555 764 3390, no wait, 3309", "5557643309"),
    ("call my office, 608 555 0100 extension 42", "6085550100 ext 42"),
])
def test_a_number_as_callers_say_it(text, number):
    assert phone_in(text) == (number, "")


@pytest.mark.parametrize(("text", "problem"), [
    ("1234567890123456", "long"), ("1234567890123456 extension 12", "long"), ("sorry, did I say 3312? it's 3321", "short"),
    ("I've been waiting for twenty minutes", "short"), ("oh sorry yeah it's Bill", ""),
])
def test_what_is_not_a_whole_number(text, problem):
    number, said = phone_in(text)
    assert number == "" and said == problem


def test_an_extension_never_takes_the_number_past_15_digits():
    number, _ = phone_in("call 0117 496 0555 extension 12345")
    assert number == "01174960555"  # 16 digits with the extension: the extension is dropped, never spoken
    assert len(number.replace(" ext ", "")) <= MAX_DIGITS


def test_the_unit_is_not_part_of_the_number():
    assert number_runs("I'm in flat 3, 555 123 4567") == ["3", "5551234567"]
    assert number_runs("flat two oh four, five five five one two three four five six seven") == ["204", "5551234567"]


def test_a_number_is_read_back_in_its_groups():
    assert speak_number("6085550100 ext 42") == "six zero eight, five five five, zero one zero zero, extension four two"
    assert speak_number("01174960018") == "zero one one seven, four nine six, zero zero one eight"
    assert speak_number("02079460018") == "zero two zero, seven nine four six, zero zero one eight"
    assert speak_number("07700900123") == "zero seven seven zero zero, nine zero zero, one two three"


@pytest.mark.parametrize(("text", "asked", "place"), [
    ("14 Park Lane, Leeds", True, "14 Park Lane, Leeds"),
    ("it's 22 Kirkstall Road, LS3 1LJ", True, "22 Kirkstall Road, LS3 1LJ"),
    ("LS6 2AB", True, "LS6 2AB"),
    ("flat 2, 9 Headingley Lane", True, "Flat 2, 9 Headingley Lane"),
    ("hi it's Mr Singh at 40 Cardigan Road, I'd like to leave a message", False, "40 Cardigan Road"),
    ("I'm in unit four c", False, "Unit 4C"),
    ("the farm on Moor Lane", True, "Moor Lane"),
    ("I'm 79 so please speak up", False, ""),
    ("I waited 20 minutes", True, ""),
    # a one-word street after "I'm at", and a town after "in"
    ("it's Mo Patel, boiler service please, I'm at 18 Westway in Halifax, number's 07700 900 111", False, "18 Westway, Halifax"),
    ("we live at 210 Broadway, apartment 4", False, "Apartment 4, 210 Broadway"),
    ("I'm at 5 and my number is", False, ""),
    # a row of cottages, and a street in words the street list does not know, given as the answer
    ("it's Ffion Rees at 5 Mill Cottages Llandeilo, ring me on 07700 900 222", False, "5 Mill Cottages, Llandeilo"),
    ("14 Ffordd y Parc Bangor", True, "14 Ffordd y Parc Bangor"),
    ("14 Ffordd y Parc Bangor", False, ""),
    # corrected as it is said: the last one counts
    ("31 Mill Street, Horsforth, no sorry, Rawdon, 31 Mill Street Rawdon", True, "31 Mill Street, Rawdon"),
    ("it's 14 Beck Lane, sorry no, 41 Beck Lane", True, "41 Beck Lane"),
])
def test_an_address_or_unit(text, asked, place):
    assert address_in(text, asked=asked) == place


def test_a_caller_who_will_not_give_the_address():
    assert refuses_place("I'd rather not say until I know the price")
    assert address_in("I'd rather not say until I know the price", asked=True) == ""


@pytest.mark.parametrize(("text", "number"), [
    ("hiya, Linda Marsh, 0113 496 0557, 27 Holly Bank, LS6 4QE, ring me about a quote", "01134960557"),
    ("it's 555 867 5309, 14 Park Lane", "5558675309"),
    ("five five five, eight six seven, five three oh nine", "5558675309"),  # ASR commas inside one number
])
def test_a_house_number_after_a_whole_phone_number_is_not_part_of_it(text, number):
    assert phone_in(text) == (number, "")


@pytest.mark.parametrize(("text", "number"), [
    # said again from where it went wrong, making a whole UK number of what was one digit short
    ("it's oh seven seven double oh nine double oh three one, no sorry, three one five", "07700900315"),
    ("it's 555 867 0155, no wait, 0156", "5558670156"),  # the same length again: the end replaced
])
def test_a_number_said_again_from_where_it_went_wrong(text, number):
    assert phone_in(text) == (number, "")


@pytest.mark.parametrize("text", ["no sorry, it ends 0169, I always mix those two up", "the last four is oh one six nine"])
def test_which_digits_are_meant_is_no_digit(text):
    assert number_runs(text) == ["0169"]


def test_a_number_said_in_two_breaths_after_a_pause_is_one_number():
    assert phone_in("ring me on my work line instead oh one one seven four nine six ... oh one four four") == ("01174960144", "")
    assert phone_in("0117496, and my flat is 12") == ("0117496", "")  # a flat number after is not the rest of it


@pytest.mark.parametrize(("said", "want"), [
    ("mine's plus forty four seven seven double oh, nine double oh, seven two one", "+447700900721"),
    ("+44 20 7946 0018", "+442079460018"),
    ("plus one six oh eight five five five oh one four three", "+16085550143"),
    ("+1 212 555 0144 extension 302", "+12125550144 ext 302"),
    ("I'm abroad, +34 611 555 014", "+34611555014"),
    ("call 1 800 555 0199", "18005550199"),  # no "plus": as said
    ("5 plus years at 555 867 5309", "5558675309"),  # a "plus" not before the number
])
def test_a_country_code_said_first_is_kept_so_the_number_dials_from_anywhere(said, want):
    """A US clinic cannot ring "07700 900721"; "+447700900721" dials from any country."""
    assert phone_in(said) == (want, "")


@pytest.mark.parametrize(("number", "said"), [
    ("+447700900721", "plus four four, seven seven zero zero, nine zero zero, seven two one"),
    ("+16085550143", "plus one, six zero eight, five five five, zero one four three"),
    ("+34611555014", "plus three four, six one one, five five five, zero one four"),
])
def test_an_international_number_is_read_back_with_its_country_code(number, said):
    assert speak_number(number) == said


@pytest.mark.parametrize(("a", "b", "same"), [
    ("+447700900654", "07700900654", True), ("447700900654", "+447700900654", True), ("+16085550143", "6085550143", True),
    ("6085550143 ext 4", "6085550143", False), ("+447700900654", "07700900655", False), ("+34611555014", "611555014", False),
])
def test_one_number_written_two_ways_is_the_same(a, b, same):
    assert same_number(a, b) is same and same_number(b, a) is same



@pytest.mark.parametrize(("text", "number"), [
    # the group that went wrong said again from its first digit, making a whole number
    ("oh seven nine double one three double oh five two sorry five eight one", "07911300581"),
    ("six oh eight five five five oh one four sorry one four seven", "6085550147"),
])
def test_a_group_said_again_from_its_first_digit(text, number):
    assert phone_in(text) == (number, "")


@pytest.mark.parametrize(("text", "place"), [
    ("b d seven one a x, forty one manningham lane", "41 Manningham Lane, BD7 1AX"),
    ("it's eleven hyde park road l s six one a b", "11 Hyde Park Road, LS6 1AB"),
    ("h x one two q t", "HX1 2QT"),
])
def test_a_postcode_said_letter_by_letter(text, place):
    assert address_in(text, asked=True) == place


@pytest.mark.parametrize("text", ["oh seven seven double oh nine double oh seven seven seven i'd like a call back",
                                  "so four two one a b c", "me and my wife"])
def test_letters_and_digits_that_are_no_postcode(text):
    assert address_in(text, asked=True) == ""


def test_digits_after_a_colon_are_a_number_of_their_own():
    assert phone_in("sorry that's the old one, the new one ends two two four one: 0113 496 2241") == ("01134962241", "")


def test_a_number_said_twice_over_is_one_number():
    said = "oh one one three four nine six oh two two seven oh one one three four nine six oh two two seven"
    assert phone_in(said) == ("01134960227", "")


def test_a_number_broken_by_a_pause_to_find_it():
    assert phone_in("it's six oh eight, um hold on it's a new phone, five five five oh one two two")[0] == "6085550122"
    assert phone_in("apartment 204, my number is 867 5309") == ("8675309", "")  # a unit's digits are not the area code


@pytest.mark.parametrize(("text", "code"), [("ls nine seven dx", "LS9 7DX"), ("the postcode is so one eight a b", "SO1 8AB")])
def test_a_postcode_s_last_letters_as_one_word_or_announced(text, code):
    assert address_in(text, asked=True) == code


@pytest.mark.parametrize("text", ["ring me after 12 p m", "so eighteen a b", "i'm in flat so twelve a b"])
def test_times_and_words_are_no_postcode(text):
    assert address_in(text, asked=True) in ("", "Flat So")  # never a postcode
    assert not any(ch.isdigit() for ch in address_in(text, asked=True))


def test_the_last_digit_said_after_and_on_the_end():
    assert phone_in("it's oh seven, seven oh, oh nine, double oh, six one, and a four on the end") == ("07700900614", "")


@pytest.mark.parametrize(("text", "number"), [
    ("home is 0113 496 0512, or the mobile, 07700 900871. No, actually, the first one, the landline.", "01134960512"),
    ("my house phone's 608 555 0101 or my cell 608 555 0122, sorry, go with the home number", "6085550101"),
    ("home is 608 555 0101 but my cell 608 555 0122 is better", "6085550122"),  # no going back: the last one
])
def test_two_numbers_and_the_one_the_caller_prefers(text, number):
    assert phone_in(text) == (number, "")


def test_a_number_begun_then_said_again_from_its_start():
    assert phone_in("oh one one three um oh one one three four nine six oh nine one two") == ("01134960912", "")
