"""Guest side of the qcount plugin: the instructions this process has executed so far.

Only under `script/aarch64 --count-instructions`; elsewhere instructions() raises.

    import qcount                       # script/aarch64 puts this folder on PYTHONPATH
    before = qcount.instructions()
    for _ in range(100): work()
    per_call = (qcount.instructions() - before) / 100

The count is summed over all threads of the process; each call costs a few thousand
instructions (a system call, a file read), negligible next to what it measures.
"""

from __future__ import annotations

import ctypes
import os

QCOUNT_MAGIC = 0x51434F554E54  # the plugin's QCOUNT_MAGIC
_SYS_GETPID = 172  # aarch64
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.syscall.argtypes = [ctypes.c_long, ctypes.c_ulong]


def instructions() -> int:
    """Guest instructions executed by this process so far (all threads)."""
    path = f"/tmp/.qcount-{os.getpid()}"
    _libc.syscall(_SYS_GETPID, QCOUNT_MAGIC)
    try:
        with open(path, encoding="ascii") as f:
            value = int(f.read())
        os.unlink(path)
    except FileNotFoundError:
        raise RuntimeError("no instruction counter: run under "
                           "script/aarch64 --count-instructions") from None
    return value
