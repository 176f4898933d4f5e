"""Embed the knowledge base once and ship the vectors beside it, so that no process has to.

Writes ``src/async_processor/processors/data/knowledge/child_qa_vectors.npz``: the phrasings'
and answers' all-MiniLM-L6-v2 vectors and the digest of the knowledge base's text and the
model (``knowledge.digest``); ``processors.knowledge`` uses them only when the digest
matches. Run after editing ``child_qa.jsonl``, from the repository root:
``PYTHONPATH=src python tools/build_knowledge_vectors.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from async_processor.processors import knowledge


def main() -> None:
    folder = Path(knowledge.__file__).parent / "data" / "knowledge"
    text = (folder / knowledge.KNOWLEDGE_FILE).read_text(encoding="utf-8")
    entries = knowledge.load_entries(text.splitlines())
    phrasings, answers = knowledge.embed(entries)
    target = folder / knowledge.VECTORS_FILE
    with target.open("wb") as stream:
        np.savez_compressed(
            stream, phrasings=phrasings, answers=answers, digest=np.str_(knowledge.digest(text))
        )
    print(f"{target}: {phrasings.shape[0]} phrasings, {answers.shape[0]} answers")


if __name__ == "__main__":
    main()
