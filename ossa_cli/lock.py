"""The data directory's lock: one `ossa up` per directory, and no `ossa backup`/`restore` under a running one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from ossa_cli.errors import UsageError


class DataDirLock:
    """An exclusive lock on the data directory for the life of `ossa up` (one platform per directory)."""

    NAME = "ossa-up.lock"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        import fcntl

        f = (self.data_dir / self.NAME).open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise UsageError(f"another `ossa up` (pid {holder}) is already using {self.data_dir}") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
