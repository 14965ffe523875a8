"""The message saver's retry schedule and its verdicts, at their exact edges (survivors of a
mutation run over bot/store/saver.py): back-off doubling from the base to the cap with its
jitter, the attempt count in the logs, ENOSPC as permanent. On a virtual clock."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest

from bot.store.api import NewMessage
from bot.store.saver import MessageSaver, permanent

pytestmark = pytest.mark.virtual_time  # tests/virtual_time.py: the back-off's sleeps take no real time


class FlakyStore:
    """Fails the first ``fails`` saves with a transient error, then commits; records when each try came."""

    def __init__(self, fails: int) -> None:
        self.fails, self.tries, self.saved = fails, [], []

    async def save_message(self, msg: NewMessage, *, final: bool) -> int:
        self.tries.append(asyncio.get_running_loop().time())
        if len(self.tries) <= self.fails:
            raise ConnectionResetError("the database went away")
        self.saved.append((msg.uid, final))
        return 41 + len(self.saved)


def message(uid: str = "u-1") -> NewMessage:
    return NewMessage(call_sid="CA1", caller="+15550001", name="Ann", callback_number="5550001", about="x", uid=uid)


async def test_retries_double_from_the_base_to_the_cap_with_bounded_jitter(caplog):
    caplog.set_level(logging.INFO, logger="bot.store.saver")
    permanent(ValueError())  # its first call imports sqlalchemy's exceptions: CPU the loop's clock would count
    store = FlakyStore(fails=7)
    saver = MessageSaver(store, retry_base_s=0.5, retry_cap_s=8.0)  # type: ignore[arg-type]
    mid = await saver.save(message(), final=True)
    assert mid == 42 and store.saved == [("u-1", True)] and saver.retries == 7 and saver.pending == 0
    gaps = [b - a for a, b in zip(store.tries, store.tries[1:], strict=False)]
    expected = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, then the cap
    assert len(gaps) == len(expected)
    for gap, nominal in zip(gaps, expected, strict=True):
        assert nominal * 0.8 - 1e-3 <= gap <= nominal * 1.2 + 0.05, (gaps, expected)
    retries = [r for r in caplog.records if r.getMessage() == "message save failed, retrying"]
    assert [r.fields["attempt"] for r in retries] == list(range(1, 8))
    assert all(r.fields["call_sid"] == "CA1" and r.fields["uid"] == "u-1" for r in retries)
    (done,) = [r for r in caplog.records if r.getMessage() == "message saved after retries"]
    assert done.fields["attempts"] == 8 and done.fields["call_sid"] == "CA1"


async def test_a_second_message_starts_its_own_back_off_from_the_base():
    permanent(ValueError())  # warm the import, as above
    store = FlakyStore(fails=1)
    saver = MessageSaver(store, retry_base_s=1.0, retry_cap_s=8.0)  # type: ignore[arg-type]
    await saver.save(message("a"), final=True)
    first = store.tries[1] - store.tries[0]
    store.fails = len(store.tries) + 1  # the next save fails once more
    await saver.save(message("b"), final=True)
    second = store.tries[-1] - store.tries[-2]
    assert 0.8 - 1e-3 <= first <= 1.25 and 0.8 - 1e-3 <= second <= 1.25  # not carried over from "a"


@pytest.mark.parametrize("code, expected", [(errno.ENOSPC, True), (errno.ESPIPE, False), (errno.ECONNRESET, False)])
def test_only_a_full_disk_is_a_permanent_os_error(code, expected):
    assert permanent(OSError(code, "os says")) is expected


async def test_a_permanent_failure_is_told_and_never_retried(caplog):
    class FullDisk(FlakyStore):
        async def save_message(self, msg: NewMessage, *, final: bool) -> int:
            self.tries.append(0.0)
            raise OSError(errno.ENOSPC, "No space left on device")

    caplog.set_level(logging.ERROR, logger="bot.store.saver")
    store = FullDisk(0)
    saver = MessageSaver(store)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        await saver.save(message(), final=True)
    assert len(store.tries) == 1 and saver.retries == 0
    (err,) = [r for r in caplog.records if r.getMessage() == "message not saved"]
    assert err.fields == {"call_sid": "CA1", "uid": "u-1", "error": "OSError"}
