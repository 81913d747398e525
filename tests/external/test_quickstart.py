"""The README's quick start, run as written: the block between the quickstart markers goes to
bash unchanged. Only the build step is stood in for (CI has built the debug binary already:
`cargo` is a no-op here and `rekey` on PATH is that binary), and it runs in an empty
directory, so its data, logs and venv never touch the repository."""

import os
import re
import socket
import subprocess
from pathlib import Path

from conftest import REKEY_BIN

ROOT = Path(__file__).resolve().parents[2]


def quickstart_block() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart:begin -->\n```sh\n(.*?)```\n<!-- quickstart:end -->", readme, re.S)
    assert block, "README.md has no quickstart block"
    return block.group(1)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_the_readme_quick_start_runs_as_written(tmp_path):
    for port in (8080, 4566, 9000):
        assert port_is_free(port), f"the quick start needs port {port}, which is taken"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cargo").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "cargo").chmod(0o755)
    (bin_dir / "rekey").symlink_to(Path(REKEY_BIN).resolve())
    work = tmp_path / "work"
    work.mkdir()
    (work / "scripts").symlink_to(ROOT / "scripts")
    script = work / "quickstart.sh"
    script.write_text(quickstart_block())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REKEY_", "AWS_"))}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    out = subprocess.run(["bash", "-euo", "pipefail", str(script)], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in work.glob("*.log"))
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}{logs}"
    # Step 4: a token for the first app.
    assert '"token_type": "bearer"' in out.stdout
    # Step 6: the SP-API rotation was accepted and the test notification reached the webhook.
    assert "\n204\n" in out.stdout
    assert "testNotification" in (work / "webhooks.log").read_text()
    # Step 7: `rekey rotate` saved a secret different from the first one, which now works...
    new_secret = (work / "secret.txt").read_text().strip()
    assert new_secret.startswith("rks_")
    assert "the new secret is in secret.txt" in out.stdout
    # ...and the app has a current and a previous secret.
    assert re.search(r"current .*\n.*previous|previous .*\n.*current", out.stdout), out.stdout
    # Step 8: the policy rotated, the agent verified and wrote the new secret and ran the hook
    # once, and the app shows its policy and what it waits for before retiring the old secret.
    assert (work / "reloads.log").read_text() == "reloaded\n"
    assert "new secret verified and written" in (work / "agent.log").read_text()
    assert "rotation policy: rotate before expiry 31536000 s, retire when unused 60 s" in out.stdout
    assert "next policy step: waiting (" in out.stdout, out.stdout
