"""deploy/prometheus: the scrape config and alerting rules pass promtool and match the platform's ports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ossa_runtime.settings import Settings
from ossa_runtime.topology import SERVICES
from tests.prom import promtool, promtool_check

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


def test_scrape_config_passes_promtool() -> None:
    out = promtool_check("config", str(DEPLOY / "prometheus.yml"))
    assert "1 rule files found" in out


def test_alerting_rules_pass_promtool() -> None:
    out = promtool_check("rules", str(DEPLOY / "alerts.yml"))
    assert "SUCCESS: 6 rules found" in out


def test_alerting_rules_fire_when_they_should() -> None:
    out = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"], cwd=DEPLOY, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_scrape_targets_are_the_default_ports() -> None:
    text = (DEPLOY / "prometheus.yml").read_text()
    jobs = dict(re.findall(r'job_name: (\S+)\n(?:.*\n)*?\s+- targets: \["127\.0\.0\.1:(\d+)"\]', text))
    defaults = Settings()
    expected = {f"ossa-{info.name}": str(info.metrics_port(defaults)) for info in SERVICES}
    expected["envoy"] = str(defaults.envoy_admin_port)
    assert jobs == expected
    assert "metrics_path: /stats/prometheus" in text
