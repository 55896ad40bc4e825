"""A data folder's secrets (fleet key, activation key, cookie secret): made once, read whole."""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path


def secret_file(path: Path) -> str:
    """The hex secret in ``path``; 32 random bytes are written there (mode 0600) if none is.

    The file is written under a temporary name and linked into place, so no process ever
    reads it half-written, and when several processes make it at once (``--workers``)
    one of them wins and all read its secret.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first
        finally:
            temporary.unlink()
    return path.read_text().strip()
