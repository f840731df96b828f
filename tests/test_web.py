"""The evidence web page: closed by default, read-only, no path outside the store, and driven
end to end in a real headless Chromium (the system's, through Playwright)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from reporter.cli import main
from reporter.config import Settings, load_data
from reporter.evidence import LocalStore
from reporter.web.app import SECURITY_HEADERS, make_app, serve_in_thread
from reporter.web.passwords import check_password, hash_password, is_password_hash

USER, PASSWORD = "auditor", "correct horse battery staple"
# A cheap cost keeps the suite fast; the format and check are the same as the default's.
HASH = hash_password(PASSWORD, n=2**12)


@pytest.fixture
def store_root(demo_run: Path, tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    shutil.copytree(demo_run, root / demo_run.name)
    crashed = root / ".20261128T000000Z-dead00.partial"
    (crashed / "data").mkdir(parents=True)
    (crashed / "data/a.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("root:x:0:0 outside the store")
    return root


def settings_for(root: Path, **web: Any) -> Settings:
    web = {"users": {USER: HASH}, **web}
    return load_data({"reports": {"output_dir": str(root)}, "evidence": {"web": web}}, {})


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def client(store_root: Path) -> TestClient:
    return TestClient(make_app(settings_for(store_root)))


# --- passwords ----------------------------------------------------------------------------------


def test_password_hashes_check_and_differ_by_salt() -> None:
    assert is_password_hash(HASH) and HASH.startswith("scrypt$4096$8$1$")
    assert check_password(PASSWORD, HASH)
    assert not check_password(PASSWORD + " ", HASH)
    assert not check_password(PASSWORD, None)
    assert hash_password("x" * 12, n=2**10) != hash_password("x" * 12, n=2**10)
    for bad in (
        "",
        "pbkdf2$1$x",
        HASH.replace("scrypt$4096", "scrypt$4095"),
        "scrypt$2097152$8$1$AA$AA",
    ):
        assert not is_password_hash(bad) and not check_password(PASSWORD, bad)


def test_hash_password_command_reads_stdin_and_the_config_accepts_its_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert check_password(PASSWORD, printed)
    settings = load_data({"evidence": {"web": {"users": {"auditor": printed}}}}, {})
    assert settings.evidence.web.users == {"auditor": printed}
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["hash-password"]) == 2


def test_a_plain_password_in_the_config_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from reporter.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_data({"evidence": {"web": {"users": {"auditor": PASSWORD}}}}, {})
    (problem,) = caught.value.problems
    assert problem.path == "evidence.web.users.auditor"
    assert "hash-password" in problem.hint


# --- closed by default --------------------------------------------------------------------------


def test_without_users_or_a_proxy_the_page_lets_nobody_in(store_root: Path) -> None:
    app = make_app(load_data({"reports": {"output_dir": str(store_root)}}, {}))
    response = TestClient(app).get("/", headers=basic())
    assert response.status_code == 403 and "closed" in response.text


def test_the_web_command_refuses_to_start_closed(
    store_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "reporter.yaml"
    config.write_text(f"reports:\n  output_dir: {store_root}\n")
    assert main(["web", "-c", str(config), "--port", "0"]) == 2
    assert "hash-password" in capsys.readouterr().err


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(password="wrong"),
        basic(user="mallory"),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer x"},
        {"X-Forwarded-User": "auditor"},
    ],
)
def test_unauthenticated_requests_are_refused(
    client: TestClient, demo_run: Path, headers: dict[str, str]
) -> None:
    for path in (
        "/",
        f"/runs/{demo_run.name}",
        f"/runs/{demo_run.name}/zip",
        f"/runs/{demo_run.name}/files/manifest.json",
        "/style.css",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Basic realm=")
        assert demo_run.name not in response.text
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value


def test_a_trusted_proxy_header_counts_only_from_the_proxy(store_root: Path) -> None:
    settings = settings_for(
        store_root, users={}, trusted_header="X-Forwarded-User", trusted_proxies=["10.0.0.0/24"]
    )
    app = make_app(settings)
    via_proxy = TestClient(app, client=("10.0.0.7", 40000))
    response = via_proxy.get("/", headers={"X-Forwarded-User": "<b>erin</b>"})
    assert response.status_code == 200
    assert "signed in as &lt;b&gt;erin&lt;/b&gt;" in response.text
    assert via_proxy.get("/").status_code == 401  # the proxy sent no user
    direct = TestClient(app, client=("192.0.2.1", 40000))
    assert direct.get("/", headers={"X-Forwarded-User": "erin"}).status_code == 401
    # On a dual-stack socket an IPv4 proxy's address arrives as ::ffff:10.0.0.7.
    mapped = TestClient(app, client=("::ffff:10.0.0.7", 40000))
    assert mapped.get("/", headers={"X-Forwarded-User": "erin"}).status_code == 200
    outside = TestClient(app, client=("::ffff:10.0.1.7", 40000))
    assert outside.get("/", headers={"X-Forwarded-User": "erin"}).status_code == 401


# --- what an auditor sees -----------------------------------------------------------------------


def test_pages_list_runs_and_show_a_run(client: TestClient, demo_run: Path) -> None:
    index = client.get("/", headers=basic())
    assert index.status_code == 200
    assert f'href="/runs/{demo_run.name}"' in index.text
    assert "20261128T000000Z-dead00" in index.text and "incomplete" in index.text
    assert 'href="/runs/20261128T000000Z-dead00"' not in index.text

    page = client.get(f"/runs/{demo_run.name}", headers=basic())
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert page.status_code == 200 and "Verified: all" in page.text
    assert hashlib.sha256((demo_run / "manifest.json").read_bytes()).hexdigest() in page.text
    for account in manifest["coverage"]:
        assert account["account_id"] in page.text
    for entry in manifest["files"]:
        assert entry["sha256"] in page.text
    for delivery in manifest["deliveries"]:
        assert delivery["recipient"] in page.text


def test_every_file_and_the_zip_download_as_attachments(client: TestClient, demo_run: Path) -> None:
    manifest = json.loads((demo_run / "manifest.json").read_text())
    # Nested paths too: the schema the run's findings.json was written to.
    assert "schema/findings.schema.json" in {entry["path"] for entry in manifest["files"]}
    for entry in manifest["files"]:
        response = client.get(f"/runs/{demo_run.name}/files/{entry['path']}", headers=basic())
        assert response.status_code == 200, entry["path"]
        assert hashlib.sha256(response.content).hexdigest() == entry["sha256"]
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment;")
    archive = client.get(f"/runs/{demo_run.name}/zip", headers=basic())
    assert archive.status_code == 200
    assert f'filename="{demo_run.name}.zip"' in archive.headers["content-disposition"]
    assert archive.content == LocalStore(demo_run.parent).export(demo_run.name)


def test_a_tampered_run_shows_as_failed_and_is_not_zipped(
    client: TestClient, store_root: Path, demo_run: Path
) -> None:
    (store_root / demo_run.name / "data/findings.csv").write_text("edited")
    page = client.get(f"/runs/{demo_run.name}", headers=basic())
    assert "FAILED verification" in page.text and "changed: <code>data/findings.csv" in page.text
    assert client.get(f"/runs/{demo_run.name}/zip", headers=basic()).status_code == 409


def test_the_page_is_read_only(client: TestClient, demo_run: Path) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = client.request(method, f"/runs/{demo_run.name}", headers=basic())
        assert response.status_code == 405
    assert (demo_run / "manifest.json").is_file()


def test_no_path_outside_the_store_can_be_requested(
    client: TestClient, store_root: Path, demo_run: Path
) -> None:
    run = demo_run.name
    (store_root / run / "data/unlisted.txt").write_text("not in the manifest")
    (store_root / run / "data/findings.csv").unlink()
    (store_root / run / "data/findings.csv").symlink_to(store_root.parent / "secret.txt")
    attempts = [
        f"/runs/{run}/files/..%2F..%2Fsecret.txt",
        f"/runs/{run}/files/%2e%2e/%2e%2e/secret.txt",
        f"/runs/{run}/files/%2E%2E%2F%2E%2E%2Fsecret.txt",
        f"/runs/{run}/files/data%5c..%5c..%5csecret.txt",
        f"/runs/{run}/files/%252e%252e/%252e%252e/secret.txt",
        f"/runs/{run}/files//etc/passwd",
        f"/runs/{run}/files/data/../../secret.txt",
        f"/runs/{run}/files/data/unlisted.txt",
        f"/runs/{run}/files/data/findings.csv",  # listed, but now a symlink out of the store
        f"/runs/{run}/files/data",
        "/runs/..%2F..%2Fetc/files/passwd",
        "/runs/.20261128T000000Z-dead00.partial/files/data/a.json",
        "/runs/20261128T000000Z-dead00/files/data/a.json",
        "/runs/%2e%2e/zip",
        "/runs/.state",
    ]
    for path in attempts:
        response = client.get(path, headers=basic())
        assert response.status_code in (400, 404, 409), (path, response.status_code)
        assert "outside the store" not in response.text, path
        assert "not in the manifest" not in response.text, path


# --- a real browser -----------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None  # Playwright's own build, if `playwright install chromium` put one there


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=_chromium(), headless=True)
        except Error as exc:
            pytest.fail(f"no Chromium to drive ({exc}); `make install-dev` installs it")
        yield chromium
        chromium.close()


def test_an_auditor_signs_in_opens_a_run_and_verifies_the_downloaded_zip(
    browser: Any,
    store_root: Path,
    demo_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = serve_in_thread(make_app(settings_for(store_root)), "127.0.0.1", 0)
    try:
        stranger = browser.new_context()
        response = stranger.request.get(server.url + "/")
        assert response.status == 401 and demo_run.name not in response.text()
        stranger.close()

        context = browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD}, accept_downloads=True
        )
        page = context.new_page()
        assert page.goto(server.url + "/").status == 200
        rows = page.locator("#runs tbody tr")
        assert rows.count() == 2
        assert "incomplete" in rows.nth(1).inner_text()
        page.click(f"a.run:text('{demo_run.name}')")
        page.wait_for_url(f"**/runs/{demo_run.name}")
        assert page.locator("#verification").inner_text().startswith("Verified: all")
        assert page.locator("#coverage tbody tr").count() == len(
            json.loads((demo_run / "manifest.json").read_text())["coverage"]
        )
        # The stylesheet loaded under the CSP (no inline style is allowed).
        assert page.eval_on_selector("header", "e => getComputedStyle(e).display") == "flex"

        with page.expect_download() as info:
            page.click("#zip")
        download = info.value
        assert download.suggested_filename == f"{demo_run.name}.zip"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)

        traversal = context.request.get(
            server.url + f"/runs/{demo_run.name}/files/..%2F..%2Fsecret.txt"
        )
        assert traversal.status == 400
        context.close()
    finally:
        server.stop()
    assert not server.thread.is_alive()

    # Verify the zip as an auditor would: unpack it and recompute every hash by hand...
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(saved) as archive:
        assert archive.namelist()[0] == "manifest.json"
        archive.extractall(unpacked)
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert manifest["run_id"] == demo_run.name
    for entry in manifest["files"]:
        data = (unpacked / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    # ...and with the tool.
    assert main(["evidence", "verify", str(saved)]) == 0
    assert capsys.readouterr().out.strip() == f"{saved.name}: verified"


def test_serve_starts_the_page_only_when_enabled_and_never_closed(store_root: Path) -> None:
    import socket
    import urllib.error
    import urllib.request

    from reporter.errors import UsageError
    from reporter.web.app import start_for_serve

    assert start_for_serve(settings_for(store_root)) is None
    closed = load_data(
        {"reports": {"output_dir": str(store_root)}, "evidence": {"web": {"enabled": True}}}, {}
    )
    with pytest.raises(UsageError, match="let nobody in"):
        start_for_serve(closed)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_for_serve(settings_for(store_root, enabled=True, port=port))
    assert server is not None and server.port == port
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + "/")
        assert refused.value.code == 401
        request = urllib.request.Request(server.url + "/", headers=basic())
        with urllib.request.urlopen(request) as response:
            assert "incomplete" in response.read().decode()
    finally:
        server.stop()


# --- the running server: who the peer is, and malformed credentials (issue 17) -----------------

FORGED = {
    "X-Forwarded-For": "10.0.0.5",
    "Forwarded": "for=10.0.0.5;proto=https",
    "X-Real-IP": "10.0.0.5",
}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Any]:
    """Start the real server (uvicorn on 127.0.0.1, any free port) for the given settings."""
    servers: list[Any] = []

    def start(settings: Settings, store: Any = None) -> Any:
        servers.append(serve_in_thread(make_app(settings, store), "127.0.0.1", 0))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def raw_get(server: Any, *header_lines: bytes) -> tuple[int, dict[str, str], bytes]:
    """GET / over a plain socket, header lines sent byte for byte (clients refuse some)."""
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    request += b"".join(line + b"\r\n" for line in header_lines) + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_secured(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name


@pytest.mark.parametrize(
    "forged",
    [{name: value} for name, value in FORGED.items()]
    + [FORGED, {"X-Forwarded-For": "10.0.0.5, 10.0.0.5", "X-Forwarded-Host": "proxy"}],
    ids=["x-forwarded-for", "forwarded", "x-real-ip", "all", "x-forwarded-for-chain"],
)
def test_forwarding_headers_never_make_a_client_the_trusted_proxy(
    live: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forged: dict[str, str]
) -> None:
    # uvicorn's own default would trust X-Forwarded-For from 127.0.0.1; the variable widens
    # that to everyone, and still nothing may change.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    server = live(
        settings_for(
            tmp_path, users={}, trusted_header="X-Forwarded-User", trusted_proxies=["10.0.0.5"]
        )
    )
    response = httpx2.get(server.url + "/", headers={**forged, "X-Forwarded-User": "mallory"})
    assert response.status_code == 401 and "mallory" not in response.text
    assert_secured(response.headers)


def test_the_proxy_is_the_socket_peer_whatever_the_request_says(
    live: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    server = live(
        settings_for(
            tmp_path, users={}, trusted_header="X-Forwarded-User", trusted_proxies=["127.0.0.1"]
        )
    )
    # A proxy on this host that passes its client's address along is still the proxy.
    client = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9", "X-Real-IP": "::1"}
    response = httpx2.get(server.url + "/", headers={**client, "X-Forwarded-User": "erin"})
    assert response.status_code == 200 and "signed in as erin" in response.text
    assert httpx2.get(server.url + "/", headers=client).status_code == 401


def test_serve_starts_the_page_without_uvicorn_proxy_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reporter.web.app import start_for_serve

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(
        tmp_path,
        enabled=True,
        port=port,
        trusted_header="X-Forwarded-User",
        trusted_proxies=["10.0.0.5"],
    )
    server = start_for_serve(settings)
    assert server is not None
    try:
        forged = {**FORGED, "X-Forwarded-User": "mallory"}
        assert httpx2.get(server.url + "/", headers=forged).status_code == 401
        assert httpx2.get(server.url + "/", headers={**forged, **basic()}).status_code == 200
    finally:
        server.stop()


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


MALFORMED_AUTHORIZATION = {
    "non-ascii": "Basic é".encode(),
    "latin-1-byte": b"Basic \xe9\xe9\xe9\xe9",
    "non-ascii-in-base64": b"Basic " + _b64(f"{USER}:{PASSWORD}".encode())[:-4] + b"\xc3\xa9==",
    "bad-base64": b"Basic !!!",
    "bad-padding": b"Basic " + _b64(b"auditor:x")[:-1],
    "no-colon": b"Basic " + _b64(USER.encode()),
    "no-name": b"Basic " + _b64(f":{PASSWORD}".encode()),
    "not-utf-8": b"Basic " + _b64(b"auditor:\xff\xfe\xfd"),
    "empty": b"",
    "scheme-only": b"Basic",
    "two-spaces": b"Basic  " + _b64(f"{USER}:{PASSWORD}".encode()),
    "space-inside": b"Basic " + _b64(f"{USER}:{PASSWORD}".encode()).replace(b"Y", b"Y ", 1),
    "other-scheme": b"Bearer " + _b64(f"{USER}:{PASSWORD}".encode()),
    "overlong": b"Basic " + _b64(f"{USER}:{PASSWORD}".encode() + b"x" * 6000),
    "control-bytes": b"Basic \x01\x02",
}


@pytest.mark.parametrize(
    "value", MALFORMED_AUTHORIZATION.values(), ids=MALFORMED_AUTHORIZATION.keys()
)
def test_every_malformed_credential_is_a_401_with_the_security_headers(
    live: Any, tmp_path: Path, value: bytes
) -> None:
    server = live(settings_for(tmp_path))
    status, headers, _ = raw_get(server, b"Authorization: " + value)
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic realm=")
    assert_secured(headers)
    good = b"Authorization: Basic " + _b64(f"{USER}:{PASSWORD}".encode())
    assert raw_get(server, good)[0] == 200  # the same server, still answering


def test_a_500_from_the_sign_in_check_carries_the_security_headers(
    live: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> str:
        raise RuntimeError("the sign-in check broke")

    monkeypatch.setattr("reporter.web.auth.Access.user", broken)
    server = live(settings_for(tmp_path))
    status, headers, body = raw_get(server, b"Authorization: Basic eA==")
    assert status == 500 and b"broke" not in body
    assert_secured(headers)


def test_a_500_from_a_page_carries_the_security_headers(live: Any, tmp_path: Path) -> None:
    class BrokenStore(LocalStore):
        def runs(self) -> Any:
            raise RuntimeError("the store broke")

    server = live(settings_for(tmp_path), BrokenStore(tmp_path))
    response = httpx2.get(server.url + "/", headers=basic())
    assert response.status_code == 500 and "broke" not in response.text
    assert_secured(response.headers)
