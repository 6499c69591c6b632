"""`ossa backup` and `ossa restore` (see ossa_cli.backup for what the archive holds)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ossa_cli import credentials
from ossa_cli.backup import stores
from ossa_cli.backup.archive import (
    FORMAT,
    JWT_SECRET,
    PG_DUMP,
    RDB,
    CorruptArchive,
    _write_archive,
    ossa_version,
    upload_copy,
    verify_and_extract,
)
from ossa_cli.credentials import SECRET_FILE
from ossa_cli.embedded import EmbeddedServerError
from ossa_cli.errors import UsageError, error
from ossa_cli.lock import DataDirLock
from ossa_cli.postgres import EmbeddedPostgres
from ossa_cli.token import TOKEN_ENV
from ossa_runtime.settings import PREFIX, Settings, SettingsError
from ossa_search import snapshot
from ossa_search.snapshot import SnapshotError


def add_backup_commands(sub: Any) -> None:
    backup = sub.add_parser(
        "backup",
        help="write one archive of PostgreSQL, Redis and the vectors (running or stopped platform)",
        description="Back up the platform's data: pg_dump, a Redis RDB snapshot and the vector store, with checksums.",
    )
    backup.add_argument("--data-dir", type=Path, help=f"the platform's data directory (default: ${PREFIX}DATA_DIR)")
    backup.add_argument("--out", type=Path, default=Path("backup"), help="where the archive goes (default: ./backup)")
    backup.add_argument(
        "--upload", type=Path, metavar="DIR", help=f"also copy it here (default: ${PREFIX}BACKUP_UPLOAD_DIR)"
    )
    backup.set_defaults(command=cmd_backup)
    restore = sub.add_parser(
        "restore",
        help="bring a stopped platform's data back from an `ossa backup` archive",
        description="Verify an archive's checksums, then restore PostgreSQL, Redis and the vectors "
        "(the platform must be stopped).",
    )
    restore.add_argument("archive", type=Path, help="an ossa-backup-*.tar.gz")
    restore.add_argument(
        "--data-dir", type=Path, help=f"the data directory to restore into (default: ${PREFIX}DATA_DIR)"
    )
    restore.set_defaults(command=cmd_restore)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if args.data_dir is not None:
        settings = settings.replace(data_dir=Path(args.data_dir).expanduser().resolve())
    return settings


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Backup ------------------------------------------------------------------------------------------


def cmd_backup(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except SettingsError as err:
        return error(str(err), 2)
    lock = DataDirLock(settings.data_dir)
    running = False
    if settings.data_dir.is_dir():
        try:
            lock.acquire()  # held while stopped: no `ossa up` starts in the middle of the backup
        except UsageError:
            running = True
    try:
        archive = backup(settings, Path(args.out), running=running)
    except (stores.BackupError, SnapshotError, EmbeddedServerError, OSError) as err:
        return error(f"backup failed: {err}", 1)
    finally:
        lock.release()
    upload = args.upload or (Path(settings.backup_upload_dir) if settings.backup_upload_dir else None)
    if upload is not None:
        try:
            copied = upload_copy(archive, upload)
        except OSError as err:
            return error(f"the archive {archive} was written but copying it to {upload} failed: {err}", 1)
        _say(f"uploaded to {copied}")
    print(archive, flush=True)
    return 0


def backup(settings: Settings, out_dir: Path, *, running: bool) -> Path:
    """Write the archive into `out_dir`; returns its path."""
    cluster = EmbeddedPostgres.in_data_dir(settings.data_dir, 0)
    if not running and not settings.database_url and not cluster.initialized():
        raise stores.BackupError(f"{settings.data_dir} holds no platform data (no PostgreSQL cluster)")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    staging = Path(tempfile.mkdtemp(prefix=".ossa-backup-", dir=out_dir))
    try:
        manifest = _collect(settings, staging, running)
        manifest["created"] = stamp
        archive = out_dir / f"ossa-backup-{stamp}.tar.gz"
        _write_archive(staging, manifest, archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return archive.resolve()


def _collect(settings: Settings, staging: Path, running: bool) -> dict[str, Any]:
    manifest: dict[str, Any] = {"format": FORMAT, "ossa_version": ossa_version(), "running": running}
    (staging / "postgres").mkdir()
    with stores.postgres_url(settings, running) as url:
        _say("postgres: pg_dump ...")
        pg_dump_version = stores.pg_dump(url, settings.db_password, staging / PG_DUMP)
        manifest["postgres"] = {
            "server_version": stores.pg_server_version(url, settings.db_password),
            "pg_dump": pg_dump_version,
            "rows": stores.pg_row_counts(url, settings.db_password),
        }
    (staging / "redis").mkdir()
    with stores.redis_target(settings, running) as target:
        _say("redis: RDB snapshot ...")
        keys, redis_version = stores.redis_rdb(target, staging / RDB)
        manifest["redis"] = {"server_version": redis_version, "keys": keys}
    _say("vectors ...")
    if settings.qdrant_url.startswith(("http://", "https://")):
        manifest["qdrant"] = {"backend": "server", "points": snapshot.dump_server_vectors(settings, staging / "qdrant")}
    else:
        (staging / "qdrant").mkdir()
        points = None
        if running:
            bearer = os.environ.get(TOKEN_ENV, "") or credentials.read_admin_token(settings.data_dir)
            points = snapshot.snapshot_embedded_vectors(settings, bearer, staging / "qdrant")
        manifest["qdrant"] = {
            "backend": "embedded",
            "snapshot": "search service" if points is not None else "file copy",
            "points": points
            if points is not None
            else snapshot.copy_embedded_vectors(settings.data_dir, staging / "qdrant"),
        }
    secret = settings.data_dir / SECRET_FILE
    if secret.is_file():
        (staging / "secrets").mkdir()
        shutil.copyfile(secret, staging / JWT_SECRET)
    return manifest


# Restore -----------------------------------------------------------------------------------------


def cmd_restore(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except SettingsError as err:
        return error(str(err), 2)
    if not args.archive.is_file():
        return error(f"{args.archive}: no such file", 2)
    if settings.redis_url:
        return error(
            f"{PREFIX}REDIS_URL is set: load the archive's {RDB} into that server by its own means; "
            "`ossa restore` restores the embedded Redis only",
            2,
        )
    settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ossa-restore-", dir=settings.data_dir.parent))
    lock = DataDirLock(settings.data_dir)
    try:
        manifest = verify_and_extract(args.archive, staging)  # before anything in the data directory
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        restore(settings, staging, manifest)
    except CorruptArchive as err:
        return error(f"{args.archive} is corrupt, nothing was restored: {err}", 2)
    except UsageError as err:
        return error(f"{err}: stop the platform before restoring", 2)
    except (stores.BackupError, SnapshotError, EmbeddedServerError, OSError) as err:
        return error(f"restore failed: {err}", 1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.release()
    _say(f"restored {args.archive} into {settings.data_dir}")
    return 0


def restore(settings: Settings, staging: Path, manifest: dict[str, Any]) -> None:
    with stores.postgres_url(settings, running=False) as url:
        _say("postgres: pg_restore ...")
        stores.pg_restore(url, settings.db_password, staging / PG_DUMP)
        rows = stores.pg_row_counts(url, settings.db_password)
        expected = manifest["postgres"]["rows"]
        if {k: rows.get(k) for k in expected} != expected:
            raise stores.BackupError(
                f"postgres: row counts after the restore {rows} differ from the backup's {expected}"
            )
    _say("redis ...")
    stores.restore_embedded_redis(settings.data_dir, staging / RDB, int(manifest["redis"]["keys"]))
    _say("vectors ...")
    qdrant = manifest["qdrant"]
    points = {str(k): int(v) for k, v in qdrant["points"].items()}
    if qdrant["backend"] == "server":
        if not settings.qdrant_url.startswith(("http://", "https://")):
            raise stores.BackupError(f"the backup's vectors come from a Qdrant server: set {PREFIX}QDRANT_URL")
        snapshot.restore_server_vectors(settings, staging / "qdrant", points)
    else:
        snapshot.restore_embedded_vectors(settings.data_dir, staging / "qdrant", points)
    if (staging / JWT_SECRET).is_file():
        target = settings.data_dir / SECRET_FILE
        shutil.copyfile(staging / JWT_SECRET, target)
        os.chmod(target, 0o600)
