"""The `ossa backup` archive: its members, manifest and checksums.

A gzipped tar whose first member is `manifest.json` (format, versions, counts, and the size and
sha256 of every other member); written 0600 through a `.partial` file, so a reader never sees half
an archive. `verify_and_extract` checks the whole gzip stream and every member before a restore
touches anything.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
import zlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ossa_cli.credentials import SECRET_FILE

FORMAT = 1
MANIFEST = "manifest.json"
PG_DUMP = "postgres/ossa_isolated.dump"
RDB = "redis/dump.rdb"
JWT_SECRET = f"secrets/{SECRET_FILE}"


class CorruptArchive(ValueError):
    """The archive does not match its manifest (or cannot be read)."""


def ossa_version() -> str:
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
