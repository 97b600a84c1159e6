"""Atomic file writes: a reader sees the old file or the whole new one, never a part."""
import os
import secrets
from contextlib import contextmanager, suppress
from pathlib import Path


@contextmanager
def atomic_write(path):
    """Yield a binary file that replaces ``path`` only if the block finishes without error.

    The data go to a temporary file beside ``path`` (same filesystem), are fsynced,
    then os.replace'd over ``path``; on any exception the temporary file is removed and
    ``path`` is untouched. New files get the usual mode (0o666 minus the umask).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path):
    """Make the rename durable where the platform allows opening folders."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
