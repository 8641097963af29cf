"""Files written whole or not at all: each is written to a hidden temporary beside its
target and renamed over it (``os.replace``), so a reader, or a kill at any moment, sees the
old file or the new one, never a torn one.

``durable`` (the default) also flushes the file and the rename to disk, so that a power
cut keeps one of the two as well: checkpoints, a run's settings, results. The cache's
shards and the synthetic videos pass ``durable=False``: they are rebuilt from their
sources, and a flush per file would slow the cache's writing.

>>> atomic_write_text("runs/x/log.txt", "done\\n")                        # doctest: +SKIP
>>> atomic_write_json("runs/x/settings.json", {"beta": 0.3})             # doctest: +SKIP
>>> with atomic_path("a.gif") as temporary:                              # doctest: +SKIP
...     image.save(temporary, format="GIF")
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_beside(path: str | os.PathLike) -> Path:
    """``.NAME.PID.RANDOM.tmp`` in ``path``'s folder: unique to this process and call, and
    hidden (the cache's readers skip names beginning with "." as another writer's)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = True) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` for the caller (or a library) to write; when
    the block ends it replaces ``path``. If the block raises, the temporary is removed and
    ``path`` is left as it was. The folder must exist."""
    path = Path(path)
    temporary = temporary_beside(path)
    try:
        yield temporary
        if durable:
            _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)  # make the rename itself durable


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see the module); returns ``path``."""
    with atomic_path(path, durable=durable) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see the module); returns ``path``."""
    with atomic_path(path, durable=durable) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def json_safe(value):
    """``value`` with every non-finite float (NaN, inf) as None, recursively: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike, content, *, durable: bool = True) -> Path:
    """Write ``content`` as indented JSON (UTF-8, NaN/inf as null, a final newline) to ``path``
    atomically (see the module); returns ``path``."""
    text = json.dumps(json_safe(content), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text, durable=durable)
