"""The child-safety check: unsafe replies never get through, ordinary ones pass unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from async_processor import InvalidInputError
from async_processor.processors.safety import (
    FLAGS,
    SAFE_REPLIES,
    check_child_message,
    check_reply,
    length_limit,
    safe_reply,
    scan_text,
    split_sentences,
    word_count,
)

DATA = Path(__file__).parent.parent / "data" / "safety"


def lines(name: str) -> list[str]:
    text = (DATA / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


ADVERSARIAL = [
    tuple(line.split(" | ", 1))
    for name in ("adversarial_replies.txt", "heldout_adversarial.txt")
    for line in lines(name)
]
BENIGN = lines("benign_replies.txt") + lines("heldout_benign.txt")


def test_the_lists_are_big_enough() -> None:
    assert len(ADVERSARIAL) >= 90 and len(BENIGN) >= 60
    assert all(len(item) == 2 for item in ADVERSARIAL)


def is_safe_for(text: str, age: int) -> bool:
    return not scan_text(text) and check_reply(text, age).action == "allowed"


@pytest.mark.parametrize(("kind", "reply"), ADVERSARIAL, ids=[r[:40] for _, r in ADVERSARIAL])
def test_no_unsafe_reply_gets_through(kind: str, reply: str) -> None:
    verdict = check_reply(reply, child_age=4, emotion="sad")
    assert not verdict.passed and verdict.action in ("shortened", "replaced"), verdict
    assert verdict.text != reply and is_safe_for(verdict.text, 4), verdict
    if kind == "too long":
        assert verdict.flags == ("too_long",)
    else:
        assert verdict.action == "replaced", verdict


@pytest.mark.parametrize("reply", BENIGN, ids=[r[:40] for r in BENIGN])
def test_an_ordinary_reply_passes_unchanged(reply: str) -> None:
    verdict = check_reply(reply, child_age=4)
    assert verdict.passed and verdict.action == "allowed", verdict
    assert verdict.text == reply and verdict.flags == () and verdict.reasons == ()


def test_block_and_false_positive_rates() -> None:
    """The figures in docs/processors/text-and-safety.md (run with -s to see them)."""
    blocked = sum(
        check_reply(reply, 4).action != "allowed" and is_safe_for(check_reply(reply, 4).text, 4)
        for _, reply in ADVERSARIAL
    )
    false_positives = sum(check_reply(reply, 4).action != "allowed" for reply in BENIGN)
    print(
        f"\nadversarial blocked: {blocked}/{len(ADVERSARIAL)}"
        f" ({100 * blocked / len(ADVERSARIAL):.1f}%)"
        f"\nbenign changed (false positives): {false_positives}/{len(BENIGN)}"
        f" ({100 * false_positives / len(BENIGN):.1f}%)"
    )
    assert blocked == len(ADVERSARIAL)
    assert false_positives == 0


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("I want to kill myself", "self_harm"),
        ("I don't want to be alive any more", "self_harm"),
        ("k1ll yours3lf", "self_harm"),
        ("k i l l yourself", "self_harm"),
        ("kiiiiilll yourself", "self_harm"),
        ("KILL YOURSELF", "self_harm"),
        ("ＫＩＬＬ ｙｏｕｒｓｅｌｆ", "self_harm"),  # noqa: RUF001 (fullwidth)
        ("𝐤𝐢𝐥𝐥 𝐲𝐨𝐮𝐫𝐬𝐞𝐥𝐟", "self_harm"),  # noqa: RUF001 (mathematical bold)
        ("кill yоurself", "self_harm"),  # noqa: RUF001 (Cyrillic k and o)
        ("ᴋɪʟʟ yourself", "self_harm"),  # small capitals
        ("k\u200bi\u200bl\u200bl yourself", "self_harm"),  # zero-width spaces
        ("k\u0336i\u0336l\u0336l\u0336 yourself", "self_harm"),  # combining strike-through
        ("kíll yourself", "self_harm"),
        ("the dog was murdered", "violence"),
        ("someone is hurting me", "violence"),
        ("look at my gun", "weapons"),
        ("g.u.n.s", "weapons"),
        ("5ex", "sexual"),
        ("take off your clothes", "sexual"),
        ("let's drink vodka", "drugs_alcohol"),
        ("sm0king weed", "drugs_alcohol"),
        ("f*ck", "profanity"),
        ("sh!t", "profanity"),
        ("@ss", "profanity"),
        ("the zombie will get you", "scary_content"),
        ("play with matches", "dangerous_activity"),
        ("a stranger asked me to come with him", "dangerous_activity"),
        ("don’t tell your mum", "secrecy"),  # noqa: RUF001 (curly apostrophe)
        ("it's our little secret", "secrecy"),
        ("call me on 555-123-4567", "personal_information"),
    ],
)
def test_scan_text_sees_through_spelling_tricks(text: str, flag: str) -> None:
    assert flag in scan_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "The class had a picnic on the grass.",
        "Hello! Seashells are pretty.",
        "Scunthorpe and Essex are places in England.",
        "A shooting star zoomed past. Make a wish!",
        "We saw killer whales and a water gun at the fair.",
        "Never play with matches. Never go with a stranger.",
        "Don't touch the hot stove.",
        "Nice to meet you, little one.",
        "I had a scary dream about a monster under my bed.",
        "Count with me: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10!",
        "one two three four five six seven eight",
        "I have 3 cats and 2 dogs. We walked 5 miles down the road.",
        "In 2024 I turned 5.",
        "My name is Sam and I am six.",
        "Let's bake 12 cookies at 180 degrees for 15 minutes.",
    ],
)
def test_ordinary_text_has_no_flags(text: str) -> None:
    assert scan_text(text) == []


def test_scan_text_returns_sorted_known_flags() -> None:
    flags = scan_text("Shut up, give me your gun and some beer, and don't tell your dad.")
    assert flags == sorted(flags) == ["drugs_alcohol", "profanity", "secrecy", "weapons"]
    assert set(flags) <= set(FLAGS)
    with pytest.raises(InvalidInputError, match="must be a string, got bytes"):
        scan_text(b"text")  # type: ignore[arg-type]


def test_a_ban_is_advice_but_an_invitation_is_not() -> None:
    assert scan_text("Never go anywhere with a stranger.") == []
    assert scan_text("Don't be afraid to go with a stranger.") == ["dangerous_activity"]
    assert scan_text("Don't wait, go with the stranger.") == ["dangerous_activity"]
    # Violence is flagged even when negated: a child does not need it either way.
    assert scan_text("Don't kill the cat.") == ["violence"]


@pytest.mark.parametrize(
    "message",
    [
        "my mum's number is 555-123-4567",
        "call (555) 123 4567",
        "my number is 555.123.4567",
        "it's 5551234567",
        "ring 07700 900123",
        "our phone is +44 20 7946 0958",
        "my phone is +1 415 555 2671",
        "five five five one two three four five six seven",
        "5 5 5 1 2 3 4 9 8 7",
        "I live at 42 Elm Street",
        "my house is 12b Oak Road, Leeds",
        "I live on Maple Avenue",
        "we're in apartment 4c",
        "my address is the blue house by the shop",
        "email me at sam.smith@example.com",
        "it's sam at gmail dot com",
        "sam (at) example (dot) org",
        "our postcode is SW1A 1AA",
        "my zip code is 90210",
        "my name is Emma Watson",
        "my full name is Emma",
        "I go to Oakwood Primary",
        "my school is called Hill Primary",
        "my password is bunny123",
        "I'll tell you my password",
    ],
)
def test_personal_information_in_a_childs_message(message: str) -> None:
    assert "personal_information" in scan_text(message)
    assert "personal_information" in check_child_message(message)


@pytest.mark.parametrize(
    ("message", "first"),
    [
        ("I want to hurt myself", "self_harm"),
        ("somebody hit me", "violence"),
        ("he said it's our secret and not to tell my mum", "secrecy"),
        ("I found matches", "dangerous_activity"),
    ],
)
def test_a_child_in_danger_is_a_concern(message: str, first: str) -> None:
    assert check_child_message(message)[0] == first
    assert check_child_message("I built a tower with my blocks") == []


def test_a_reply_to_a_child_in_distress_names_a_trusted_grown_up() -> None:
    child = "nobody would miss me, I want to die"
    cheerful = check_reply("Let's sing a song about ducks!", 6, "sad", child_message=child)
    assert cheerful.action == "replaced" and "needs_trusted_adult" in cheerful.flags
    assert cheerful.text == SAFE_REPLIES["self_harm"] == safe_reply("sad", ["self_harm"])
    caring = "I'm so sorry you feel this way. Please tell your mum or a teacher right now."
    assert check_reply(caring, 6, "sad", child_message=child).action == "allowed"
    # Personal details alone do not need a grown-up; the reply must just not repeat them.
    assert check_reply("Let's talk about cats!", 6, child_message="I live at 4 Elm Road").passed


def test_the_replacement_fits_the_emotion() -> None:
    for emotion in ("happy", "sad", "angry", "scared", "surprised", "neutral"):
        assert check_reply("Let's drink beer!", 5, emotion).text == SAFE_REPLIES[emotion]
    assert check_reply("Let's drink beer!", 5, "bored").text == SAFE_REPLIES["neutral"]
    assert check_reply("Let's drink beer!", 5, " SAD ").text == SAFE_REPLIES["sad"]
    assert check_reply("I could hurt myself.", 5, "happy").text == SAFE_REPLIES["self_harm"]
    asks = check_reply("What's your address?", 5, "happy")
    assert asks.text == SAFE_REPLIES["privacy"]


@pytest.mark.parametrize("age", [None, *range(0, 19)])
def test_every_safe_reply_passes_for_every_age(age: int | None) -> None:
    for text in SAFE_REPLIES.values():
        assert check_reply(text, age).action == "allowed", text


def test_length_fits_the_age() -> None:
    reply = (
        "Bees live in hives. They make honey from nectar. They dance to show the way to "
        "flowers. The queen bee lays the eggs. Worker bees keep the hive clean."
    )
    young = check_reply(reply, 4)
    assert young.action == "shortened" and young.flags == ("too_long",)
    assert (
        young.text
        == "Bees live in hives. They make honey from nectar. They dance to show the way to flowers."
    )
    assert "at most 3 and 40" in young.reasons[0]
    assert check_reply(reply, 10).action == "allowed"
    assert check_reply(reply).action == "shortened"  # unknown age: the 6-8 limits
    assert len(split_sentences(check_reply(reply).text)) == 4
    assert length_limit(3) == (3, 40) and length_limit(17)[0] > length_limit(12)[0]


def test_a_reply_whose_first_sentence_is_too_long_is_replaced() -> None:
    rambling = " ".join(["and the bear walked on"] * 12) + "."
    verdict = check_reply(rambling, 4, "happy")
    assert verdict.action == "replaced" and verdict.text == SAFE_REPLIES["happy"]


def test_empty_and_wrong_replies() -> None:
    assert check_reply("  ...  ", 4).flags == ("empty",)
    with pytest.raises(InvalidInputError, match="must be a string"):
        check_reply(None, 4)  # type: ignore[arg-type]
    for age in (-1, 3.5, True, "4", 500):
        with pytest.raises(InvalidInputError, match="child_age must be a whole number"):
            check_reply("Hi!", age)  # type: ignore[arg-type]


def test_the_verdict_is_plain_data() -> None:
    verdict = check_reply("Visit www.example.com and tell me your name", 4)
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["flags"] == ["link", "personal_information_request"]
    assert data["action"] == "replaced" and data["passed"] is False
    assert data["reasons"] == [
        "the reply contains a link",
        "the reply asks the child for personal information",
    ]


def test_sentences_and_words() -> None:
    assert split_sentences("Mr. Fox said hi. Did you know? Wow!! e.g. this") == [
        "Mr. Fox said hi.",
        "Did you know?",
        "Wow!!",
        "e.g. this",
    ]
    assert split_sentences("") == [] and split_sentences("...") == []
    assert word_count("Don't stop, well-known bear: 3 cats!") == 6


def test_counting_in_words_is_not_a_phone_number() -> None:
    reply = "Let's count! One, two, three, four, five, six, seven, eight, nine, ten!"
    verdict = check_reply(reply, child_age=8)
    assert verdict.passed, verdict.reasons
    assert "personal_information" in scan_text("call five five five, two one eight, four four")
