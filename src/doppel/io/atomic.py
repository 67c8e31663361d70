"""Write files so that a crash never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` only if the block succeeds.

    The temporary name keeps the suffix so that format detection by extension still works.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.{os.getpid()}.", suffix=f".tmp{final.suffix}",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(final: Path) -> list[Path]:
    """Delete temporaries of ``final`` left by writers that were killed (SIGKILL, power cut): their names
    carry the writer's process id, and that process is gone. Returns what was deleted."""
    gone = []
    prefix = f".{final.stem}."
    for tmp in final.parent.glob(f".{glob.escape(final.stem)}.*.tmp{glob.escape(final.suffix)}"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def write_bytes_atomic(final: str | Path, data: bytes) -> None:
    with atomic_path(final) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(final: str | Path, text: str) -> None:
    write_bytes_atomic(final, text.encode("utf-8"))
