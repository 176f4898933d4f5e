"""How the output-side classifier judges text the project vetted as safe: the distinct
sentences of the reply bank, and the replies to risk (protective advice).

    PYTHONPATH=src python tools/safeguarding_on_vetted_text.py

Prints, for each set, how many texts ``assess_reply`` flags and how many it calls
``uncertain``; docs/processors/safeguarding.md quotes the figures.
"""

from __future__ import annotations

from async_processor.processors import safeguarding, safety
from async_processor.processors.reply_bank import INTENTS
from async_processor.processors.risk_replies import REPLIES


def judged(texts: list[str]) -> tuple[int, int]:
    """(flagged, uncertain) among ``texts``."""
    verdicts = [safeguarding.assess_reply(text) for text in texts]
    flagged = sum(not verdict.safe for verdict in verdicts)
    return flagged, sum(verdict.safe and verdict.uncertain for verdict in verdicts)


def main() -> None:
    bank = sorted(
        {
            sentence
            for intent in INTENTS
            for reply in intent.replies + intent.young
            for sentence in safety.split_sentences(reply.replace("{name}", "Mia"))
        }
    )
    advice = [
        reply
        for variants in REPLIES.categories.values()
        for reply in variants.young + variants.older
    ]
    for name, texts in (("reply-bank sentences", bank), ("replies to risk", advice)):
        flagged, uncertain = judged(texts)
        print(f"{name}: {len(texts)}; flagged {flagged}; uncertain {uncertain}")


if __name__ == "__main__":
    main()
