"""Schema-driven testing of the native API from the committed openapi.json, with
schemathesis (a tool this project did not write): no 5xx, and every response matches the
schema and its content type. Runs against its own server, since it creates, changes and
deletes whatever it finds."""

import os
import subprocess
import sys

import requests

from conftest import new_server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_native_api_holds_its_schema_under_generated_requests(tmp_path):
    server = new_server(tmp_path)
    server.start()
    try:
        token = server.access_token()
        config = tmp_path / "schemathesis.toml"
        # Aim the generated requests at the real org, so they get past authorization.
        config.write_text(f'[parameters]\n"path.org_id" = "{server.org_id}"\n')
        schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        out = subprocess.run(
            [
                schemathesis, "--config-file", str(config), "run", os.path.join(REPO, "openapi.json"),
                "--url", server.base,
                "-H", f"Authorization: Bearer {token}",
                "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--max-examples", "200", "--seed", "1", "--workers", "2",
                "--report-dir", str(tmp_path / "report"),
            ],
            capture_output=True, text=True, timeout=600,
        )
        assert out.returncode == 0, out.stdout[-6000:]
        # The served document is the file that was tested.
        served = requests.get(server.base + "/api/v1/openapi.json", timeout=5).text
        assert served == open(os.path.join(REPO, "openapi.json")).read()
    finally:
        server.stop()
