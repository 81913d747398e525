"""The deployment files: alert rules checked and unit-tested by promtool, the systemd unit
verified by systemd-analyze (where systemd is installed), the Dockerfile's promises read with a
Dockerfile parser, and the release script's stripped binary and separate symbols."""

import os
import shutil
import subprocess

import pytest
from dockerfile_parse import DockerfileParser

from conftest import REKEY_BIN

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
# scripts/test.sh unpacks Debian's promtool here when it is not on the PATH.
PROMTOOL = shutil.which("promtool") or os.path.join(ROOT, "target", "tools", "usr", "bin", "promtool")


def run(*args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def test_the_alert_rules_are_valid_and_fire_when_they_should():
    rules = os.path.join(DEPLOY, "prometheus")
    out = run(PROMTOOL, "check", "rules", "alerts.yml", cwd=rules)
    assert out.returncode == 0, out.stdout + out.stderr
    out = run(PROMTOOL, "test", "rules", "alerts_test.yml", cwd=rules)
    assert out.returncode == 0, out.stdout + out.stderr
    text = open(os.path.join(rules, "alerts.yml"), encoding="utf-8").read()
    for alert in ("RekeyNotificationDead", "RekeyOutboxStuck", "RekeySecretExpiringSoon",
                  "RekeyClientCacheListenerDown"):
        assert f"alert: {alert}" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_the_systemd_unit_verifies(tmp_path):
    unit = open(os.path.join(DEPLOY, "rekey.service"), encoding="utf-8").read()
    for setting in ("DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=rekey",
                    "NoNewPrivileges=yes", "UMask=0077"):
        assert setting in unit
    # verify checks that the command exists: point it at the binary under test.
    path = tmp_path / "rekey.service"
    path.write_text(unit.replace("/usr/local/bin/rekey", os.path.abspath(REKEY_BIN)))
    out = run("systemd-analyze", "verify", str(path))
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    # The command line it runs is one the binary takes.
    out = run(REKEY_BIN, "serve", "--config", "/nonexistent/rekey.toml", "--data-dir", str(tmp_path))
    assert out.returncode != 0 and "rekey.toml" in out.stderr
    assert "unexpected argument" not in out.stderr


def test_the_dockerfile_builds_a_stripped_binary_run_by_an_unprivileged_user():
    parser = DockerfileParser(path=os.path.join(DEPLOY, "Dockerfile"))
    stages = [i for i in parser.structure if i["instruction"] == "FROM"]
    assert len(stages) == 2, "a build stage and a runtime stage"
    runtime = [i for i in parser.structure if i["startline"] > stages[1]["startline"]]
    by = lambda name: [i["value"] for i in runtime if i["instruction"] == name]
    assert "scripts/release.sh" in " ".join(i["value"] for i in parser.structure
                                             if i["instruction"] == "RUN")
    assert by("COPY") == ["--from=build /src/dist/rekey /usr/local/bin/rekey"]
    user = by("USER")
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert any('"rekey", "healthcheck"' in h for h in by("HEALTHCHECK"))
    ignored = open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8").read().split()
    assert "target/" in ignored and "data/" in ignored


def test_the_release_script_ships_a_stripped_binary_with_separate_symbols(tmp_path):
    # The dev profile stands in for release here (same steps, no second optimised build).
    out = run(os.path.join(ROOT, "scripts", "release.sh"), "--profile", "dev", "--out",
              str(tmp_path), cwd=ROOT)
    assert out.returncode == 0, out.stderr
    binary, symbols = tmp_path / "rekey", tmp_path / "rekey.debug"

    def sections(path):
        return run("readelf", "-S", "-W", str(path)).stdout

    assert ".debug_line" not in sections(binary) and ".symtab" not in sections(binary)
    assert ".gnu_debuglink" in sections(binary)
    assert ".debug_line" in sections(symbols)
    assert binary.stat().st_size * 2 < symbols.stat().st_size + binary.stat().st_size
    version = run(str(binary), "--version")
    assert version.returncode == 0 and version.stdout.startswith("rekey ")
    sums = (tmp_path / "SHA256SUMS").read_text()
    assert "rekey\n" in sums and "rekey.debug\n" in sums
