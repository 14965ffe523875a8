"""Understanding callers by meaning: a packaged sentence encoder (encoder.py), the
exemplar phrasings of each intent (exemplars.py, exemplars.toml and the business file) and
the nearest-exemplar classifier with its margins and keyword fallback (classify.py)."""
