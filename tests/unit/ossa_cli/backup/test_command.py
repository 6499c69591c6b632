"""`ossa backup` archives (ossa_cli/backup/): manifest, checksums, corruption, upload; and the
datastore helpers that need no server. The full round trip is tests/e2e/test_backup_restore.py."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from ossa_cli.backup import stores as backup_stores
from ossa_cli.backup.archive import MANIFEST, CorruptArchive, _write_archive, upload_copy, verify_and_extract
from ossa_cli.main import build_parser


def make_archive(tmp_path: Path) -> Path:
    staging = tmp_path / "staging"
    (staging / "postgres").mkdir(parents=True)
    (staging / "postgres" / "ossa_isolated.dump").write_bytes(b"PGDMP" + bytes(range(256)) * 40)
    (staging / "redis").mkdir()
    (staging / "redis" / "dump.rdb").write_bytes(b"VALKEY080" + b"\x00" * 100)
    archive = tmp_path / "ossa-backup-x.tar.gz"
    _write_archive(staging, {"format": 1, "redis": {"keys": 0}}, archive)
    return archive


def test_round_trip_lists_and_checks_every_member(tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    assert archive.stat().st_mode & 0o777 == 0o600
    manifest = verify_and_extract(archive, tmp_path / "out")
    assert set(manifest["members"]) == {"postgres/ossa_isolated.dump", "redis/dump.rdb"}
    assert manifest["members"]["redis/dump.rdb"]["size"] == 109
    assert (tmp_path / "out" / "redis" / "dump.rdb").read_bytes().startswith(b"VALKEY")
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == MANIFEST


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_a_flipped_byte_is_refused(tmp_path: Path, where: float) -> None:
    archive = make_archive(tmp_path)
    data = bytearray(archive.read_bytes())
    data[int(len(data) * where)] ^= 0x55
    archive.write_bytes(bytes(data))
    with pytest.raises(CorruptArchive):
        verify_and_extract(archive, tmp_path / "out")


def _rewrite(archive: Path, change: dict[str, bytes | None]) -> None:
    """Rewrite the archive with some members replaced (None: removed) or added, manifest unchanged."""
    members: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            f = tar.extractfile(info)
            assert f is not None
            members[info.name] = f.read()
    for name, data in change.items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"redis/dump.rdb": b"VALKEY080" + b"\x01" * 100}, "redis/dump.rdb: checksum mismatch"),
        ({"redis/dump.rdb": None}, "missing: ['redis/dump.rdb']"),
        ({"extra/file": b"x"}, "not listed: ['extra/file']"),
        ({MANIFEST: b"{not json"}, "manifest.json is unreadable"),
        ({MANIFEST: json.dumps({"format": 9, "members": {}}).encode()}, "format 9"),
    ],
)
def test_members_must_match_the_manifest(tmp_path: Path, change: dict[str, bytes | None], needle: str) -> None:
    archive = make_archive(tmp_path)
    _rewrite(archive, change)
    with pytest.raises(CorruptArchive, match=needle.replace("[", r"\[").replace("]", r"\]")):
        verify_and_extract(archive, tmp_path / "out")


def test_not_an_archive_is_corrupt(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_text("hello")
    with pytest.raises(CorruptArchive, match="cannot read it"):
        verify_and_extract(bogus, tmp_path / "out")


def test_upload_copies_into_the_directory(tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    copied = upload_copy(archive, tmp_path / "remote" / "daily")
    assert copied.read_bytes() == archive.read_bytes() and copied.stat().st_mode & 0o777 == 0o600


def test_pg_password_travels_in_the_environment_not_the_command_line() -> None:
    url, env = backup_stores._pg_target("postgresql://ossa:s%40cret@127.0.0.1:5433/ossa_isolated", "")
    assert url == "postgresql://ossa@127.0.0.1:5433/ossa_isolated" and env["PGPASSWORD"] == "s@cret"
    url, env = backup_stores._pg_target("postgresql://ossa@db:5433/ossa_isolated", "from-setting")
    assert env["PGPASSWORD"] == "from-setting"


def test_redis_commands_are_resp_arrays() -> None:
    assert (
        backup_stores._command("REPLCONF", "rdb-only", "1") == b"*3\r\n$8\r\nREPLCONF\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n"
    )
    target = backup_stores.RedisTarget.from_url("redis://user:p%40ss@cache:6382/0")
    assert target == backup_stores.RedisTarget("cache", 6382, "user", "p@ss")


def test_cli_has_backup_and_restore() -> None:
    parser = build_parser()
    args = parser.parse_args(["backup", "--out", "/tmp/b", "--upload", "/mnt/u"])
    assert args.out == Path("/tmp/b") and args.upload == Path("/mnt/u")
    args = parser.parse_args(["restore", "a.tar.gz", "--data-dir", "/d"])
    assert args.archive == Path("a.tar.gz") and args.data_dir == Path("/d")


def test_restore_of_a_missing_archive_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ossa_cli.main import main

    assert main(["restore", str(tmp_path / "nope.tar.gz"), "--data-dir", str(tmp_path / "d")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
