"""The console in a real browser: Debian's headless Chromium driven over WebDriver by
Selenium (pointed at the system chromium and chromedriver; nothing is downloaded), against the
real binary. Security properties are checked with plain HTTP beside it. Screenshots of each
page at 1280 and 390 px wide go to target/console-screenshots/."""

import json
import os
import re
import shutil
import time

import jwt
import pytest
import requests

from conftest import FAST_DELIVERY_ENV, free_port, new_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHOTS = os.path.join(ROOT, "target", "console-screenshots")


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    srv = new_server(tmp_path_factory.mktemp("console"))
    # One attempt per notification: a destination that refuses makes a dead one at once.
    srv.start(RUST_LOG="info", REKEY_DELIVERY_MAX_ATTEMPTS="1", **FAST_DELIVERY_ENV)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch anything
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


AXE = os.path.join(os.path.dirname(__file__), "node_modules", "axe-core", "axe.min.js")


def serious_accessibility_violations(driver):
    """axe-core's serious and critical findings on the current page (injected through
    WebDriver, which the page's CSP does not govern)."""
    driver.execute_script(open(AXE, encoding="utf-8").read())
    violations = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" "))}))))
          .catch(e => done([{id: "axe-error", impact: "critical", help: String(e), nodes: []}]));
    """)
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def screenshot(driver, name):
    """Screenshots at 1280 and 390 px, after the page passed the accessibility check."""
    assert serious_accessibility_violations(driver) == [], name
    os.makedirs(SHOTS, exist_ok=True)
    for width in (1280, 390):
        driver.set_window_size(width, 900)
        # Phone width: the page itself never scrolls sideways (wide tables scroll inside).
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} is {overflow} px too wide at {width} px"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, max(height, 400))
        driver.save_screenshot(os.path.join(SHOTS, f"{name}-{width}.png"))
    driver.set_window_size(1280, 900)
    # Let the last resize settle before the test clicks on anything.
    time.sleep(0.2)


def navigate(driver, element):
    """Clicks `element` and waits until the next page replaced this one (else a lookup
    could find the old page's element)."""
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import WebDriverException

    old = driver.find_element("tag name", "html")
    # ChromeDriver 156 now and then fails a command with "Node with given id does not belong
    # to the document" (its DevTools node ids, not the page, went stale); the same click a
    # moment later goes through.
    for attempt in range(5):
        try:
            element.click()
            break
        except WebDriverException as e:
            if "does not belong to the document" not in str(e) or attempt == 4:
                raise
            time.sleep(0.5)
    WebDriverWait(driver, 15).until(lambda d: page_is_gone(d, old))


def page_is_gone(driver, old_html):
    """Whether `old_html` left the document. ChromeDriver 156 may answer with the same
    stale-node-id error as above instead of a stale element reference: then the page's
    root element, looked up anew, tells."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        old_html.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" in str(e):
            return driver.find_element("tag name", "html").id != old_html.id
        raise


def console_link(srv, email="owner@example.com"):
    # Like `serve`, it reads the server's configuration: the link is under its listen address.
    out = srv.cli("console-link", "--email", email, "--output", "json",
                  env_extra={"REKEY_LISTEN": f"127.0.0.1:{srv.port}"})
    return json.loads(out)["url"]


def token(srv, cid, secret):
    return requests.post(srv.base + "/oauth2/token", auth=(cid, secret),
                         data={"grant_type": "client_credentials"}, timeout=5)


def signed_in_session(srv, api_token):
    """A requests session signed in to the console with an API token, and a page's CSRF
    token."""
    s = requests.Session()
    res = s.post(srv.base + "/console/sign-in", data={"api_token": api_token}, timeout=5)
    assert res.status_code == 200 and res.url.endswith("/console"), res.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', res.text).group(1)
    return s, csrf


def test_a_developer_signs_in_with_a_link_creates_rotates_and_finishes(console_server, browser):
    from selenium.webdriver.common.by import By

    srv, d = console_server, browser
    d.get(console_link(srv))
    screenshot(d, "link")
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Continue to the console']"))
    assert d.current_url.endswith("/console"), d.page_source
    assert "owner@example.com" in d.find_element(By.CSS_SELECTOR, "header").text
    screenshot(d, "overview")

    navigate(d, d.find_element(By.LINK_TEXT, "Apps"))
    navigate(d, d.find_element(By.LINK_TEXT, "Create app"))
    d.find_element(By.ID, "name").send_keys("billing-service")
    d.find_element(By.ID, "scopes").send_keys("read")
    screenshot(d, "app-new")
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Create app']"))
    assert d.find_element(By.TAG_NAME, "h1").text == "App created"
    assert "you will not see this secret again" in d.page_source
    first = d.find_element(By.ID, "secret").get_attribute("value")
    cid = d.find_element(By.CSS_SELECTOR, ".facts code").text
    assert first.startswith("rks_") and cid.startswith("rkc_")
    # The copy button appears only with the script running (progressive enhancement).
    assert d.find_element(By.CSS_SELECTOR, "button[data-copy]").is_displayed()
    screenshot(d, "secret-once")
    assert token(srv, cid, first).status_code == 200

    navigate(d, d.find_element(By.LINK_TEXT, "Done: go to the app"))
    app_url = d.current_url
    screenshot(d, "app")

    # Notification Preferences: new secrets to a spool directory. A form with a missing
    # field comes back with the error and what was typed.
    def new_secret_section():
        return d.find_element(By.ID, "dest-new-secret").find_element(By.XPATH, "..")

    new_secret_section().find_element(By.ID, "new-secret-region").send_keys("eu-west-1")
    navigate(d, new_secret_section().find_element(By.XPATH, ".//button[normalize-space()='Save destination']"))
    assert "queueUrl is required" in d.find_element(By.ID, "new-secret-error").text
    assert d.find_element(By.ID, "new-secret-region").get_attribute("value") == "eu-west-1"
    new_secret_section().find_element(By.CSS_SELECTOR, "input[value=file]").click()
    new_secret_section().find_element(By.ID, "new-secret-directory").send_keys("console-story")
    navigate(d, new_secret_section().find_element(By.XPATH, ".//button[normalize-space()='Save destination']"))
    assert "The destination was saved" in d.find_element(By.CSS_SELECTOR, ".notice").text
    assert "Sent to spool directory console-story" in new_secret_section().text
    navigate(d, new_secret_section().find_element(By.XPATH, ".//button[normalize-space()='Send test notification']"))
    assert "test notification is on its way" in d.find_element(By.CSS_SELECTOR, ".notice").text

    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Rotate secret']"))
    assert d.find_element(By.TAG_NAME, "h1").text == "Secret rotated"
    assert "on its way to the app's destination" in d.page_source
    second = d.find_element(By.ID, "secret").get_attribute("value")
    assert second != first
    assert token(srv, cid, second).status_code == 200
    assert token(srv, cid, first).status_code == 200  # the grace period

    # Both notifications delivered: the page says so, and the new secret is in the spool.
    for _ in range(50):
        d.get(app_url)
        states = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#deliveries ~ table tbody tr td:nth-child(3)")]
        if states == ["delivered", "delivered"]:
            break
        time.sleep(0.2)
    assert states == ["delivered", "delivered"], states
    spool = os.path.join(srv.spool_root, srv.org_id, "console-story")
    contents = [open(os.path.join(spool, f), encoding="utf-8").read() for f in os.listdir(spool)]
    assert len(contents) == 2 and sum(second in c for c in contents) == 1

    d.get(app_url)
    rows = d.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows].count("previous") == 1
    finish = d.find_element(By.ID, "finish-h").find_element(By.XPATH, "..")
    assert "used in the last 24 hours" in finish.text or "never" in finish.text
    screenshot(d, "app-rotating")
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Finish rotation']"))
    assert "Rotation finished" in d.find_element(By.CSS_SELECTOR, ".notice").text
    assert token(srv, cid, first).status_code in (400, 401)
    assert token(srv, cid, second).status_code == 200

    # The list finds it by name.
    d.get(srv.base + "/console/apps?q=billing")
    assert d.find_element(By.LINK_TEXT, "billing-service")
    screenshot(d, "apps")

    # The audit trail has the story so far.
    d.get(srv.base + f"/console/audit?app={app_url.rsplit('/', 1)[1]}")
    actions = {c.text for c in d.find_elements(By.CSS_SELECTOR, "tbody td:nth-child(2)")}
    assert {"app.created", "destination.changed", "secret.rotated",
            "secret.rotation_finished"} <= actions, actions

    # Edit settings: a bad number comes back marked, with what was typed; then it saves.
    d.get(app_url)
    navigate(d, d.find_element(By.LINK_TEXT, "Edit settings"))
    name = d.find_element(By.ID, "name")
    name.clear()
    name.send_keys("billing-service-v2")
    ttl = d.find_element(By.ID, "ttl")
    ttl.clear()
    ttl.send_keys("an hour")
    screenshot(d, "app-edit")
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Save settings']"))
    assert "whole number of seconds" in d.find_element(By.ID, "form-error").text
    assert d.find_element(By.ID, "name").get_attribute("value") == "billing-service-v2"
    ttl = d.find_element(By.ID, "ttl")
    ttl.clear()
    ttl.send_keys("900")
    d.find_element(By.ID, "audiences").send_keys("https://billing.example/api urn:ledger")
    d.find_element(By.ID, "rotate-before").send_keys("86400")
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Save settings']"))
    assert "settings were saved" in d.find_element(By.CSS_SELECTOR, ".notice").text
    assert d.find_element(By.TAG_NAME, "h1").text == "billing-service-v2"
    facts = d.find_element(By.CLASS_NAME, "facts").text
    assert "https://billing.example/api (default)" in facts
    # The policy this app now has, and (its secrets expiring) when it will rotate by itself.
    assert "rotates 1 day before the secret expires" in facts, facts
    assert "no automatic retirement" in facts, facts
    assert "Next automatic rotation:" in facts, facts
    issued = token(srv, cid, second).json()
    assert issued["expires_in"] == 900
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    # No resource named: the default audience, and Rekey itself.
    assert claims["aud"] == ["https://billing.example/api", srv.base]

    # Delete, with its confirmation.
    d.find_element(By.XPATH, "//label[contains(., 'delete billing-service-v2')]/input").click()
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Delete app']"))
    assert "The app was deleted" in d.find_element(By.CSS_SELECTOR, ".notice").text
    assert token(srv, cid, second).status_code in (400, 401)

    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Sign out']"))
    assert d.current_url.endswith("/console/sign-in")
    d.get(srv.base + "/console/apps")
    assert d.current_url.endswith("/console/sign-in")
    screenshot(d, "sign-in")

    # The secrets never reached the log.
    log = open(srv.log_path, encoding="utf-8").read()
    assert first not in log and second not in log


def test_a_member_sees_a_read_only_console_and_a_forged_post_is_refused(console_server):
    srv = console_server
    owner, owner_csrf = signed_in_session(srv, srv.api_token)
    created = srv.create_app("read")
    app_id = created["app"]["id"]
    member = json.loads(srv.cli("members", "add", "--email", "member@example.com", "--role",
                                "org_member", "--output", "json",
                                env_extra={"REKEY_API_TOKEN": srv.api_token}))
    s, csrf = signed_in_session(srv, member["apiToken"])
    page = s.get(srv.base + f"/console/apps/{app_id}", timeout=5)
    assert page.status_code == 200 and created["app"]["clientId"] in page.text
    for button in ("Rotate secret", "Regenerate secret", "Revoke"):
        assert button not in page.text
    assert "Create app" not in s.get(srv.base + "/console/apps", timeout=5).text
    # The server refuses it anyway, with its own valid CSRF token.
    res = s.post(srv.base + f"/console/apps/{app_id}/rotate", data={"csrf": csrf}, timeout=5)
    assert res.status_code == 403 and "Not allowed" in res.text
    assert "<html" in res.text and "{" not in res.text.split("<main", 1)[1][:200]
    # The owner may, and sees the buttons.
    assert "Rotate secret" in owner.get(srv.base + f"/console/apps/{app_id}", timeout=5).text


def test_posts_need_the_session_csrf_token_and_this_origin(console_server):
    srv = console_server
    s, csrf = signed_in_session(srv, srv.api_token)
    app_id = srv.create_app("read")["app"]["id"]
    rotate = srv.base + f"/console/apps/{app_id}/rotate"
    assert s.post(rotate, data={}, timeout=5).status_code in (403, 415, 422)
    assert s.post(rotate, data={"csrf": "0" * 64}, timeout=5).status_code == 403
    other, _ = signed_in_session(srv, srv.api_token)
    _, other_csrf = signed_in_session(srv, srv.api_token)
    assert s.post(rotate, data={"csrf": other_csrf}, timeout=5).status_code == 403
    assert s.post(rotate, data={"csrf": csrf}, headers={"Origin": "https://evil.example"},
                  timeout=5).status_code == 403
    assert s.post(rotate, data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"},
                  timeout=5).status_code == 403
    # Nothing above rotated: the secret list has one secret.
    secrets = srv.api("GET", f"/api/v1/orgs/{srv.org_id}/apps/{app_id}/secrets").json()["items"]
    assert len(secrets) == 1
    assert s.post(rotate, data={"csrf": csrf}, timeout=5).status_code == 200


def test_a_used_link_and_a_signed_out_session_are_refused(console_server):
    srv = console_server
    url = console_link(srv)
    link_token = url.split("token=")[1]
    first = requests.Session()
    assert first.post(srv.base + "/console/link", data={"token": link_token}, timeout=5).url.endswith("/console")
    again = requests.post(srv.base + "/console/link", data={"token": link_token}, timeout=5,
                          allow_redirects=False)
    assert again.status_code == 401 and "set-cookie" not in again.headers
    assert "used already" in again.text

    s, csrf = signed_in_session(srv, srv.api_token)
    cookie = dict(s.cookies)
    assert s.post(srv.base + "/console/sign-out", data={"csrf": csrf}, timeout=5).url.endswith("/sign-in")
    stale = requests.get(srv.base + "/console/apps", cookies=cookie, timeout=5, allow_redirects=False)
    assert stale.status_code == 303 and stale.headers["location"] == "/console/sign-in"
    bad = requests.post(srv.base + "/console/sign-in", data={"api_token": "rkt_nope"}, timeout=5)
    assert bad.status_code == 401 and "not valid" in bad.text


def test_every_console_response_has_the_security_headers(console_server):
    srv = console_server
    s, _ = signed_in_session(srv, srv.api_token)
    app_id = srv.create_app("read")["app"]["id"]
    pages = ["/console/sign-in", "/console/link?token=abc", "/console", "/console/apps",
             "/console/apps/new", f"/console/apps/{app_id}", "/console/apps/nope"]
    for path in pages:
        res = s.get(srv.base + path, timeout=5)
        csp = res.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp
        assert res.headers["x-frame-options"] == "DENY", path
        assert res.headers["referrer-policy"] == "no-referrer", path
        assert res.headers["cache-control"] == "no-store", path
        assert "<script>" not in res.text and " on" + "click=" not in res.text
    css = re.search(r'href="(/console/assets/[0-9a-f]+/console.css)"', s.get(srv.base + "/console", timeout=5).text).group(1)
    asset = requests.get(srv.base + css, timeout=5)
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    root = requests.get(srv.base + "/", timeout=5, allow_redirects=False)
    assert root.status_code == 303 and root.headers["location"] == "/console"
    cookie = requests.post(srv.base + "/console/sign-in", data={"api_token": srv.api_token},
                           timeout=5, allow_redirects=False).headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


def test_a_session_ends_with_its_api_token_and_with_its_membership(console_server):
    srv = console_server
    # A session opened with an API token ends when the token is revoked.
    made = srv.api("POST", f"/api/v1/orgs/{srv.org_id}/api-tokens", json={"name": "browser"})
    assert made.status_code == 201, made.text
    s, _ = signed_in_session(srv, made.json()["apiToken"])
    assert s.get(srv.base + "/console/apps", timeout=5, allow_redirects=False).status_code == 200
    token_id = made.json()["token"]["id"]
    revoked = srv.api("POST", f"/api/v1/orgs/{srv.org_id}/api-tokens/{token_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    gone = s.get(srv.base + "/console/apps", timeout=5, allow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/console/sign-in"

    # A member removed (and added again) has no session left from before.
    added = json.loads(srv.cli("members", "add", "--email", "leaver@example.com", "--role",
                               "developer", "--output", "json",
                               env_extra={"REKEY_API_TOKEN": srv.api_token}))
    s, _ = signed_in_session(srv, added["apiToken"])
    members = f"/api/v1/orgs/{srv.org_id}/members"
    assert srv.api("DELETE", f"{members}/user/{added['userId']}").status_code == 204
    assert s.get(srv.base + "/console/apps", timeout=5, allow_redirects=False).status_code == 303
    back = srv.api("PUT", f"{members}/user/{added['userId']}", json={"role": "developer"})
    assert back.status_code == 200, back.text
    assert s.get(srv.base + "/console/apps", timeout=5, allow_redirects=False).status_code == 303


def test_what_people_type_is_escaped_and_odd_requests_get_console_pages(console_server):
    srv = console_server
    s, csrf = signed_in_session(srv, srv.api_token)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    res = srv.api("POST", f"/api/v1/orgs/{srv.org_id}/apps", json={"name": evil, "description": evil})
    assert res.status_code == 201, res.text
    app_id = res.json()["app"]["id"]
    for path in (f"/console/apps/{app_id}", "/console/apps?q=script"):
        page = s.get(srv.base + path, timeout=5).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&#60;script&#62;alert" in page or "&lt;script&gt;alert" in page, path
    # Unknown pages and wrong methods under /console are console pages, with the headers.
    for method, path, status in (("GET", "/console/nope", 404), ("GET", "/console/sign-out", 405),
                                 ("GET", f"/console/apps/{app_id}/rotate", 405)):
        res = s.request(method, srv.base + path, timeout=5)
        assert res.status_code == status, path
        assert "default-src 'none'" in res.headers.get("content-security-policy", ""), path
        assert res.headers["content-type"].startswith("text/html")
    rotate = srv.base + f"/console/apps/{app_id}/rotate"
    # A browser that says same-site (a neighbouring subdomain) is refused; a post with
    # Origin: null and no Sec-Fetch-Site (plain http to a non-local host) is judged by its
    # CSRF token.
    assert s.post(rotate, data={"csrf": csrf}, headers={"Sec-Fetch-Site": "same-site"},
                  timeout=5).status_code == 403
    assert s.post(rotate, data={"csrf": csrf}, headers={"Origin": "null"},
                  timeout=5).status_code == 200
    # Two session cookies: neither is trusted.
    cookie = s.cookies.get("rekey_session")
    two = requests.get(srv.base + "/console/apps", timeout=5, allow_redirects=False,
                       headers={"Cookie": f"rekey_session={cookie}; rekey_session=planted"})
    assert two.status_code == 303
    # A link token of the wrong shape is refused without a database write.
    bad = requests.post(srv.base + "/console/link", data={"token": "x" * 10}, timeout=5)
    assert bad.status_code == 401 and "used already, it expired" in bad.text


def test_the_overview_shows_rotations_expiring_secrets_and_dead_notifications(console_server):
    srv = console_server
    s, _ = signed_in_session(srv, srv.api_token)
    apps = f"/api/v1/orgs/{srv.org_id}/apps"
    rotating = srv.api("POST", apps, json={"name": "overview-rotating"}).json()["app"]
    assert srv.api("POST", f"{apps}/{rotating['id']}/secrets/rotate", json={}).status_code == 200
    short = srv.api("POST", apps, json={"name": "overview-short", "secretLifetimeSeconds": 864000})
    assert short.status_code == 201
    dead = srv.api("POST", apps, json={"name": "overview-dead"}).json()["app"]
    hook = {"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/closed"}
    put = srv.api("PUT", f"{apps}/{dead['id']}/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET", json=hook)
    assert put.status_code == 200, put.text
    assert srv.api("POST", f"{apps}/{dead['id']}/secrets/rotate", json={}).status_code == 200

    def section(page, heading_id):
        start = page.index(f'id="{heading_id}"')
        end = page.find("<h2", start + 1)
        return page[start:end if end > 0 else len(page)]

    for _ in range(50):
        page = s.get(srv.base + "/console", timeout=5).text
        if "overview-dead" in section(page, "dead"):
            break
        time.sleep(0.2)
    assert "overview-dead" in section(page, "dead")
    assert "overview-rotating" in section(page, "rotating")
    assert "overview-short" in section(page, "expiring")
    assert "overview-rotating" not in section(page, "expiring")
    assert f'href="/console/apps/{rotating["id"]}"' in page


def test_an_owner_manages_members_and_tokens_and_reads_the_audit_trail(console_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    srv, d = console_server, browser
    d.get(srv.base + "/console/sign-in")
    d.find_element(By.ID, "api_token").send_keys(srv.api_token)
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Sign in']"))

    navigate(d, d.find_element(By.LINK_TEXT, "Members"))
    d.find_element(By.ID, "email").send_keys("newdev@example.com")
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Add member']"))
    assert d.find_element(By.TAG_NAME, "h1").text == "Member added"
    new_token = d.find_element(By.ID, "secret").get_attribute("value")
    assert new_token.startswith("rkt_")
    navigate(d, d.find_element(By.LINK_TEXT, "Done: back to the members"))
    row = d.find_element(By.XPATH, "//tr[td[normalize-space()='newdev@example.com']]")
    assert "developer" in row.text
    Select(row.find_element(By.TAG_NAME, "select")).select_by_value("org_member")
    navigate(d, row.find_element(By.XPATH, ".//button[normalize-space()='Set role']"))
    assert "The role was set" in d.find_element(By.CSS_SELECTOR, ".notice").text
    row = d.find_element(By.XPATH, "//tr[td[normalize-space()='newdev@example.com']]")
    assert row.find_elements(By.TAG_NAME, "td")[2].text == "org_member"
    screenshot(d, "members")

    navigate(d, d.find_element(By.LINK_TEXT, "API tokens"))
    d.find_element(By.ID, "token-name").send_keys("laptop")
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Create token']"))
    laptop = d.find_element(By.ID, "secret").get_attribute("value")
    assert requests.post(srv.base + "/csp/gateway/am/api/auth/api-tokens/authorize",
                         data={"api_token": laptop}, timeout=5).status_code == 200
    navigate(d, d.find_element(By.LINK_TEXT, "Done: back to the API tokens"))
    row = d.find_element(By.XPATH, "//tr[td[normalize-space()='laptop']]")
    row.find_element(By.NAME, "confirm").click()
    navigate(d, row.find_element(By.XPATH, ".//button[normalize-space()='Revoke']"))
    assert "revoked" in d.find_element(By.XPATH, "//tr[td[normalize-space()='laptop']]").text
    assert requests.post(srv.base + "/csp/gateway/am/api/auth/api-tokens/authorize",
                         data={"api_token": laptop}, timeout=5).status_code != 200
    screenshot(d, "api-tokens")

    navigate(d, d.find_element(By.LINK_TEXT, "Audit"))
    d.find_element(By.ID, "action").send_keys("member.role_set")
    navigate(d, d.find_element(By.XPATH, "//button[normalize-space()='Filter']"))
    actions = {c.text for c in d.find_elements(By.CSS_SELECTOR, "tbody td:nth-child(2)")}
    assert actions == {"member.role_set"}
    screenshot(d, "audit")

    # The member, now org_member: no member management, no audit trail.
    s, _ = signed_in_session(srv, new_token)
    page = s.get(srv.base + "/console/members", timeout=5).text
    assert "Add a member" not in page and "newdev@example.com" in page
    assert s.get(srv.base + "/console/audit", timeout=5).status_code == 403
