"""Prometheus rules: valid, and their unit tests pass (promtool)."""

import shutil
import subprocess

from deploy.local.infra import REPO


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed (Debian package prometheus; .ci/run installs it)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "deploy/prometheus/rules/tthc.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "deploy/prometheus/tests/tthc_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
