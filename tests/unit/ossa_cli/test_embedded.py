"""Command lines, URLs and log handling of the embedded servers (nothing is started here)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ossa_cli import embedded
from ossa_cli.embedded import EmbeddedServerError, command_prefix, log_tail
from ossa_cli.ports import free_port
from ossa_cli.postgres import DATABASE, EmbeddedPostgres, bin_dir
from ossa_cli.valkey import EmbeddedValkey, server_binary


def test_no_prefix_needed_for_an_ordinary_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "running_as_root", lambda: False)
    assert command_prefix(drop_root=True, die_with_parent=None) == []


def test_root_runs_servers_as_nobody_keeping_dac_read_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "running_as_root", lambda: True)
    monkeypatch.setattr(embedded, "_setpriv", lambda: "/usr/bin/setpriv")
    prefix = command_prefix(drop_root=True, die_with_parent=signal.SIGINT)
    assert prefix[0] == "/usr/bin/setpriv"
    assert "--reuid=nobody" in prefix and "--regid=nogroup" in prefix and "--clear-groups" in prefix
    assert "--ambient-caps=+dac_read_search" in prefix and "--inh-caps=+dac_read_search" in prefix
    assert prefix[-2:] == ["--pdeathsig", "INT"]


def test_root_without_setpriv_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "running_as_root", lambda: True)
    monkeypatch.setattr(embedded, "_setpriv", lambda: None)
    with pytest.raises(EmbeddedServerError, match="setpriv"):
        command_prefix(drop_root=True, die_with_parent=None)
    assert command_prefix(drop_root=False, die_with_parent=signal.SIGTERM) == []


def test_log_tail_shows_only_this_runs_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("old 1\nold 2\n")
    offset = log.stat().st_size
    with log.open("a") as f:
        f.writelines(f"new {i}\n" for i in range(30))
    assert log_tail(log, offset, lines=3) == "new 27\nnew 28\nnew 29"
    assert "old" not in log_tail(log, offset, lines=100)
    assert log_tail(tmp_path / "missing.log") == ""


def test_postgres_layout_argv_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "running_as_root", lambda: False)
    pg = EmbeddedPostgres.in_data_dir(tmp_path, 5999)
    assert pg.data_path == tmp_path / "postgres" / "data"
    assert pg.log_path == tmp_path / "logs" / "postgres.log"
    argv = pg.argv()
    assert argv[0] == str(bin_dir() / "postgres")
    assert argv[argv.index("-p") + 1] == "5999"
    assert "listen_addresses=127.0.0.1" in argv and "unix_socket_directories=" in argv
    assert pg.stop_signal == signal.SIGINT
    with pytest.raises(EmbeddedServerError, match="password"):
        pg.url()
    pg.root.mkdir(parents=True)
    pg.password_path.write_text("p@ss/word\n")
    assert pg.url() == f"postgresql://ossa:p%40ss%2Fword@127.0.0.1:5999/{DATABASE}"


def test_valkey_argv_persists_and_binds_loopback(tmp_path: Path) -> None:
    port = free_port()
    vk = EmbeddedValkey.in_data_dir(tmp_path, port)
    argv = vk.argv()
    assert argv[0] == str(server_binary())
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs["--port"] == str(port)
    assert pairs["--bind"] == "127.0.0.1"
    assert pairs["--dir"] == str(tmp_path / "redis")
    assert pairs["--appendonly"] == "yes"
    assert pairs["--daemonize"] == "no"
    assert vk.url() == f"redis://127.0.0.1:{port}/0"
    assert not vk.ping_sync()  # nothing listens there
