"""Directories written atomically: a reader sees the old directory or the new one, whole."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_directory(dest: Path) -> Iterator[Path]:
    """A new temporary directory beside ``dest`` to write into; when the block ends it takes
    the place of ``dest`` (the old one, if any, is renamed away first, then removed). If the
    block raises, the temporary directory is removed and ``dest`` is left as it was."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old.{os.getpid()}.{threading.get_ident()}")
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
