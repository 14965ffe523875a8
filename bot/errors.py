"""One error type for every stage failure, normalised at the adapter edge."""

from __future__ import annotations

STAGES = ("stt", "llm", "tts")

# Codes every adapter maps vendor failures onto.
TIMEOUT = "timeout"
RATE_LIMITED = "rate_limited"
UPSTREAM_ERROR = "upstream_error"  # 5xx, connection reset, refused
BAD_RESPONSE = "bad_response"  # unparseable / unexpected shape
EMPTY_RESULT = "empty_result"  # parsed fine, but nothing usable
AUTH = "auth"  # 401/403: our key is wrong, retrying will not help
BAD_REQUEST = "bad_request"  # 4xx other than the above
UNAVAILABLE = "unavailable"  # provider not loaded / circuit open

_RETRYABLE = {TIMEOUT, RATE_LIMITED, UPSTREAM_ERROR, BAD_RESPONSE, EMPTY_RESULT, UNAVAILABLE}


class StageError(Exception):
    """A failure of one pipeline stage.

    ``message`` is safe to show to a client and to log: adapters must never put
    keys, audio, transcripts or raw vendor bodies in it.
    """

    def __init__(
        self,
        stage: str,
        code: str,
        message: str,
        *,
        retryable: bool | None = None,
        provider: str = "",
    ) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        super().__init__(f"{stage}/{code}: {message}")
        self.stage = stage
        self.code = code
        self.message = message
        self.retryable = code in _RETRYABLE if retryable is None else retryable
        self.provider = provider

    def to_dict(self) -> dict:
        return {
            "stage": self.stage,
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "provider": self.provider,
        }

    @property
    def http_status(self) -> int:
        return 504 if self.code == TIMEOUT else 502


def code_for_status(status: int) -> str:
    """Map an HTTP status from a vendor onto an error code."""
    if status == 429:
        return RATE_LIMITED
    if status in (401, 403):
        return AUTH
    if status in (408, 504):
        return TIMEOUT
    if status >= 500:
        return UPSTREAM_ERROR
    return BAD_REQUEST
