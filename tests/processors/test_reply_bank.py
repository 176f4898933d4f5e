"""The reply bank is data (``processors/data/reply_bank.json``) with a loader that checks it."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from async_processor.processors import reply_bank
from async_processor.processors.reply_bank import INTENTS, load_bank


def test_the_reply_bank_loads_from_its_data_file_and_checks_it() -> None:
    document = json.loads(
        (resources.files(reply_bank.__package__) / "data" / "reply_bank.json").read_text()
    )
    bank = load_bank(document)
    assert len(bank.intents) >= 20 and bank.young_age == 5
    broken = copy.deepcopy(document)
    broken["intents"][0]["replies"] = "hello"
    with pytest.raises(ValueError, match="'replies' must be a list of non-empty strings"):
        load_bank(broken)
    broken["intents"][0]["replies"] = []
    with pytest.raises(ValueError, match="needs at least one example and one reply"):
        load_bank(broken)
    assert load_bank(document).intents == INTENTS
