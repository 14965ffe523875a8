"""Which of an instance's listening sockets gets each new connection (WORKERS > 1).

The supervisor opens one SO_REUSEPORT socket for itself (index 0) and one per worker
(1..N), in that order, and never closes them, so their places in the kernel's
reuseport group stay fixed. A classic BPF program attached to the group
(SO_ATTACH_REUSEPORT_CBPF, Linux >= 4.5) picks the socket for each new connection:
a random one among the workers that are ready, or the supervisor's own when none is.
When readiness changes the program is replaced. So a worker that is loading, dead or
restarting gets no connection at all, and since no socket is ever closed while the
instance runs, no connection waiting in an accept queue is reset at a hand-over.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_REUSEPORT_CBPF = 51  # asm-generic/socket.h
# classic BPF opcodes (linux/filter.h)
_LD_W_ABS, _ALU_MOD_K, _JEQ_K, _RET_K = 0x20, 0x94, 0x15, 0x06
_SKF_AD_RANDOM = -0x1000 + 56  # SKF_AD_OFF + SKF_AD_RANDOM: a random u32
MAX_TARGETS = 120  # jump offsets are one byte


def program(targets: list[int]) -> bytes:
    """The filter: return one of ``targets`` (socket indexes) at random; 0 if there are none."""
    if len(targets) > MAX_TARGETS:
        raise ValueError(f"at most {MAX_TARGETS} workers")
    ins: list[tuple[int, int, int, int]] = []
    if not targets:
        ins.append((_RET_K, 0, 0, 0))
    else:
        ins += [(_LD_W_ABS, 0, 0, _SKF_AD_RANDOM & 0xFFFFFFFF), (_ALU_MOD_K, 0, 0, len(targets))]
        for j, index in enumerate(targets):
            ins += [(_JEQ_K, 0, 1, j), (_RET_K, 0, 0, index)]
        ins.append((_RET_K, 0, 0, targets[0]))
    return b"".join(struct.pack("HBBI", *i) for i in ins)


def steer(sock: socket.socket, targets: list[int]) -> None:
    """Attach (or replace) the group's program; OSError where the kernel has no such thing."""
    code = program(targets)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
