"""The emotion engine before the trained classifier, kept to be measured beside it.

MiniLM nearest centroid: each label's centroid is the mean embedding of the example
sentences below, the nearest centroid by cosine wins, and a softmax over the similarities
(temperature 0.04) gives the scores. ``benchmarks/eval_emotion.py`` runs it on the same
held-out sentences as the shipped engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from async_processor.processors.emotion_classifier import LABELS

TEMPERATURE = 0.04

#: Example sentences per label, as they were in the module; written apart from
#: tests/data/emotion/labelled.jsonl.
EXAMPLES: Mapping[str, tuple[str, ...]] = {
    "happy": (
        "I'm so happy, this is the best day ever!",
        "We had ice cream at the beach and it was so much fun.",
        "I love my new puppy, he licks my face!",
        "Yay, we won the game!",
        "Mummy said I was a really good helper today.",
        "I'm excited because we're going to see the fireworks.",
        "Playing with you makes me giggle so much.",
        "I made a new friend at the playground!",
        "I made a big sandcastle all by myself today.",
        "Look, I finished my puzzle on my own!",
    ),
    "sad": (
        "I'm sad because my balloon flew away.",
        "I miss my grandpa, he lives far away.",
        "Everyone went home and now I have nobody to play with.",
        "My tummy hurts and I feel like crying.",
        "I dropped my ice cream on the ground.",
        "My kitten is sick and has to stay at the vet.",
        "The other kids laughed at my drawing.",
        "I feel sad and I just want a hug.",
    ),
    "angry": (
        "I'm so angry, he ruined my sandcastle!",
        "It's not fair, I never get to choose!",
        "I don't want to, and you can't make me!",
        "She took my toy without asking and I'm mad at her.",
        "Go away, I'm really annoyed with you!",
        "I hate having to go to bed so early!",
        "He keeps calling me names and it makes me so angry.",
        "Give it back right now, that's mine!",
    ),
    "scared": (
        "I'm scared of the dark, something might be there.",
        "There's a scary noise outside my window.",
        "I had a nightmare and I can't go back to sleep.",
        "I'm frightened of the big waves at the sea.",
        "Please don't leave me, I'm afraid to be alone.",
        "The shadow on the wall looks like a monster.",
        "I'm nervous about my first day at the new school.",
        "What if the bees come and sting me?",
    ),
    "surprised": (
        "Wow, I didn't expect that at all!",
        "Whoa, look how huge that elephant is!",
        "What? Is that really a present for me?",
        "Oh my gosh, the snow came overnight!",
        "I can't believe my tooth just fell out!",
        "You'll never guess what happened at school!",
        "Wait, how did the rabbit come out of the hat?",
        "Oh wow, there's a frog in the bathtub!",
    ),
    "neutral": (
        "My coat is hanging on the hook.",
        "The car is parked outside the house.",
        "We are going to the shop later.",
        "My teacher's name is Miss Brown.",
        "The book has twelve pages.",
        "I'm wearing a green jumper today.",
        "Can you tell me what time it is?",
        "We did some counting at school.",
        "Why do cats have whiskers?",
        "How do birds stay up in the air?",
        "Can you tell me a story about a dragon?",
        "What do fish eat?",
    ),
}


def centroid_probabilities(
    texts: Sequence[str], encode: Callable[[Sequence[str]], npt.NDArray[np.float32]]
) -> npt.NDArray[np.float64]:
    """One row of six probabilities (in ``LABELS`` order) per text."""
    rows = []
    for label in LABELS:
        mean = encode(EXAMPLES[label]).mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    similarities = encode(texts).astype(np.float64) @ np.stack(rows).T.astype(np.float64)
    logits = (similarities - similarities.max(axis=1, keepdims=True)) / TEMPERATURE
    weights: npt.NDArray[np.float64] = np.exp(logits)
    probabilities: npt.NDArray[np.float64] = weights / weights.sum(axis=1, keepdims=True)
    return probabilities
