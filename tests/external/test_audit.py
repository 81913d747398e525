"""The audit trail's hash chain, as an operator checks it: `rekey audit verify` (through the
API) and `rekey doctor` (on the database) find an event edited in the SQLite file."""

import json
import os
import sqlite3
import subprocess

from conftest import REKEY_BIN, new_server


def test_an_event_edited_in_the_database_breaks_the_chain(tmp_path):
    srv = new_server(tmp_path)
    srv.start()
    try:
        env = {"REKEY_API_TOKEN": srv.api_token}
        created = srv.create_app("read")
        srv.cli("secrets", "rotate", created["app"]["id"], "--output", "json", env_extra=env)
        report = json.loads(srv.cli("audit", "verify", "--output", "json", env_extra=env))
        assert report["intact"] is True and report["events"] >= 3, report
        assert "intact" in srv.cli("audit", "verify", env_extra=env)

        # Someone with the database rewrites who rotated the secret.
        with sqlite3.connect(os.path.join(srv.data_dir, "rekey.db")) as db:
            db.execute("UPDATE audit_events SET actor = 'user:someone-else' "
                       "WHERE action = 'secret.rotated'")
        out = subprocess.run([REKEY_BIN, "audit", "verify"], capture_output=True, text=True,
                             env=dict(os.environ, REKEY_URL=srv.base, **env), timeout=60)
        assert out.returncode == 1, out
        assert "BROKEN" in out.stdout and "changed after it was written" in out.stdout
        doctor = subprocess.run([REKEY_BIN, "doctor", "--output", "json"], capture_output=True,
                                text=True, timeout=60,
                                env=dict(os.environ, REKEY_DATA_DIR=srv.data_dir))
        checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert doctor.returncode == 1 and checks["audit"]["status"] == "problem", checks
    finally:
        srv.stop()
