"""`ossa backup` and `ossa restore`: the spec's disaster recovery, in one archive.

    ossa backup [--data-dir DIR] [--out DIR] [--upload DIR]
    ossa restore ARCHIVE [--data-dir DIR]

`backup` works on a running platform (its servers, from the same OSSA_* settings as `ossa up`) or
a stopped one (the data directory's servers, started on free ports meanwhile). It writes
`<out>/ossa-backup-<UTC timestamp>.tar.gz` (0600) holding:

    manifest.json                 versions, row/key/point counts, size and sha256 of every member
    postgres/ossa_isolated.dump   pg_dump --format=custom
    redis/dump.rdb                the RDB snapshot (replication SYNC, as `redis-cli --rdb`)
    qdrant/<collection>/...       the embedded shards' files (or qdrant/<collection>.jsonl from a server)
    secrets/jwt.secret            the data directory's JWT key, if any (tokens stay valid after a restore)

and copies it to --upload / OSSA_BACKUP_UPLOAD_DIR when set. The archive's path is the last line
on stdout. `restore` refuses a running platform, reads the whole archive and checks every
member's checksum before touching anything, then restores each store (into an empty data
directory too) and checks the restored row, key and point counts against the manifest.

Exit codes: 0 done, 1 a step failed (the message says which), 2 bad arguments, a corrupt archive,
or a running platform.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zlib
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ossa_cli import backup_stores as stores
from ossa_cli import credentials
from ossa_cli.credentials import SECRET_FILE
from ossa_cli.embedded import EmbeddedServerError
from ossa_cli.postgres import EmbeddedPostgres
from ossa_cli.token import TOKEN_ENV
from ossa_runtime.settings import PREFIX, Settings, SettingsError

PROG = "ossa"
FORMAT = 1
MANIFEST = "manifest.json"
PG_DUMP = "postgres/ossa_isolated.dump"
RDB = "redis/dump.rdb"
JWT_SECRET = f"secrets/{SECRET_FILE}"


class CorruptArchive(ValueError):
    """The archive does not match its manifest (or cannot be read)."""


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


def _error(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Backup ------------------------------------------------------------------------------------------


def cmd_backup(args: argparse.Namespace) -> int:
    from ossa_cli.main import DataDirLock, UsageError

    try:
        settings = _settings(args)
    except SettingsError as err:
        return _error(str(err), 2)
    lock = DataDirLock(settings.data_dir)
    running = False
    if settings.data_dir.is_dir():
        try:
            lock.acquire()  # held while stopped: no `ossa up` starts in the middle of the backup
        except UsageError:
            running = True
    try:
        archive = backup(settings, Path(args.out), running=running)
    except (stores.BackupError, EmbeddedServerError, OSError) as err:
        return _error(f"backup failed: {err}", 1)
    finally:
        lock.release()
    upload = args.upload or (Path(settings.backup_upload_dir) if settings.backup_upload_dir else None)
    if upload is not None:
        try:
            copied = upload_copy(archive, upload)
        except OSError as err:
            return _error(f"the archive {archive} was written but copying it to {upload} failed: {err}", 1)
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
    manifest: dict[str, Any] = {"format": FORMAT, "ossa_version": _ossa_version(), "running": running}
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
        manifest["qdrant"] = {"backend": "server", "points": stores.dump_server_vectors(settings, staging / "qdrant")}
    else:
        (staging / "qdrant").mkdir()
        points = None
        if running:
            bearer = os.environ.get(TOKEN_ENV, "") or credentials.read_admin_token(settings.data_dir)
            points = stores.snapshot_embedded_vectors(settings, bearer, staging / "qdrant")
        manifest["qdrant"] = {
            "backend": "embedded",
            "snapshot": "search service" if points is not None else "file copy",
            "points": points
            if points is not None
            else stores.copy_embedded_vectors(settings.data_dir, staging / "qdrant"),
        }
    secret = settings.data_dir / SECRET_FILE
    if secret.is_file():
        (staging / "secrets").mkdir()
        shutil.copyfile(secret, staging / JWT_SECRET)
    return manifest


def _ossa_version() -> str:
    try:
        return version("ossa-platform")
    except PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_archive(staging: Path, manifest: dict[str, Any], archive: Path) -> None:
    members = sorted(p for p in staging.rglob("*") if p.is_file())
    manifest["members"] = {
        p.relative_to(staging).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)} for p in members
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8")
    partial = archive.with_name(archive.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.add(staging / MANIFEST, arcname=MANIFEST)
        for p in members:
            tar.add(p, arcname=p.relative_to(staging).as_posix())
    partial.replace(archive)


def upload_copy(archive: Path, target_dir: Path) -> Path:
    """Copy the archive into `target_dir` (a mounted backup volume...), atomically."""
    target_dir.mkdir(parents=True, exist_ok=True)
    dest = target_dir / archive.name
    partial = dest.with_name(dest.name + ".partial")
    shutil.copyfile(archive, partial)
    os.chmod(partial, 0o600)
    partial.replace(dest)
    return dest


# Restore -----------------------------------------------------------------------------------------


def cmd_restore(args: argparse.Namespace) -> int:
    from ossa_cli.main import DataDirLock, UsageError

    try:
        settings = _settings(args)
    except SettingsError as err:
        return _error(str(err), 2)
    if not args.archive.is_file():
        return _error(f"{args.archive}: no such file", 2)
    if settings.redis_url:
        return _error(
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
        return _error(f"{args.archive} is corrupt, nothing was restored: {err}", 2)
    except UsageError as err:
        return _error(f"{err}: stop the platform before restoring", 2)
    except (stores.BackupError, EmbeddedServerError, OSError) as err:
        return _error(f"restore failed: {err}", 1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.release()
    _say(f"restored {args.archive} into {settings.data_dir}")
    return 0


def verify_and_extract(archive: Path, dest: Path) -> dict[str, Any]:
    """Extract into `dest` (a scratch directory) checking every member against the manifest."""
    try:
        # The whole gzip stream first: its CRC covers every byte, the tar's padding included (tarfile
        # stops reading at the end-of-archive marker and never checks it).
        with gzip.open(archive, "rb") as stream:
            while stream.read(1 << 20):
                pass
        with tarfile.open(archive, mode="r:gz") as tar:
            names = tar.getnames()
            if not names or names[0] != MANIFEST:
                raise CorruptArchive(f"its first member is not {MANIFEST}")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as err:
        if isinstance(err, CorruptArchive):
            raise
        raise CorruptArchive(f"cannot read it: {err}") from None
    try:
        manifest: dict[str, Any] = json.loads((dest / MANIFEST).read_text("utf-8"))
        members: dict[str, dict[str, Any]] = manifest["members"]
    except (ValueError, KeyError, TypeError) as err:
        raise CorruptArchive(f"{MANIFEST} is unreadable: {err}") from None
    if manifest.get("format") != FORMAT:
        raise CorruptArchive(f"format {manifest.get('format')!r} is not {FORMAT}")
    found = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} - {MANIFEST}
    if found != set(members):
        extra, missing = sorted(found - set(members)), sorted(set(members) - found)
        raise CorruptArchive(f"members differ from the manifest (not listed: {extra}, missing: {missing})")
    for name, meta in members.items():
        path = dest / name
        if path.stat().st_size != meta["size"] or _sha256(path) != meta["sha256"]:
            raise CorruptArchive(f"{name}: checksum mismatch")
    return manifest


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
        stores.restore_server_vectors(settings, staging / "qdrant", points)
    else:
        stores.restore_embedded_vectors(settings.data_dir, staging / "qdrant", points)
    if (staging / JWT_SECRET).is_file():
        target = settings.data_dir / SECRET_FILE
        shutil.copyfile(staging / JWT_SECRET, target)
        os.chmod(target, 0o600)
