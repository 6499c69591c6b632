"""E2E fixture: one platform for the session, started by `ossa up` with embedded servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.platform import Platform, make_platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = make_platform(tmp_path_factory.mktemp("platform") / "data")
    p.start()
    yield p
    code = p.stop()
    assert code == 0, f"ossa up exited with {code} on SIGTERM:\n{p.log_tail()}"
