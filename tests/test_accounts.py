"""Accounts against a real server: redirects stay on the site, throttles hold, sessions end."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tornado.web

from metermatrix.accounts import DEMO_MANAGER, DEMO_PASSWORD
from metermatrix.throttle import ACCOUNT_RULE, ADDRESS_RULE
from tests.conftest import ServerProcess
from tests.test_residents import Client, _NoRedirect

AASHIMA, CARLOS = "999999999", "555555555"
#: ``next=`` values (as sent, percent-encoded) that must not lead off the site.
TRICKS = ["/%09/127.0.0.1:18299/x", "/%0a/127.0.0.1:18299/x", "/%0d/x", "/%0b/x", "/%0c/x",
          "//127.0.0.1:18299/x", "/%5C127.0.0.1:18299", "%2F%2F127.0.0.1:18299",
          "/%20/127.0.0.1:18299", "http://127.0.0.1:18299/", "/\t/127.0.0.1:18299",
          "/%E2%80%A8/127.0.0.1:18299", "/%00/x"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """A demo server (residents and the manager) for tests that fail no login."""
    server = ServerProcess(tmp_path_factory.mktemp("accounts") / "data", demo=True)
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


def resident(server: ServerProcess, meter: str = AASHIMA) -> Client:
    client = Client(server)
    assert client.login(meter, DEMO_PASSWORD).status == 303
    return client


def manager(server: ServerProcess) -> Client:
    client = Client(server)
    client.get("/management/login")
    answer = client.post("/management/login", {"username": DEMO_MANAGER,
                                                "password": DEMO_PASSWORD})
    assert answer.status == 303
    return client


# -- next= stays on this site -----------------------------------------------------------
@pytest.mark.parametrize("trick", TRICKS)
def test_login_never_redirects_off_the_site(demo: ServerProcess, trick: str) -> None:
    query = "?next=" + urllib.parse.quote(trick, safe="%/:")
    client = Client(demo)
    answer = client.post("/profile" + query, {"meter_id": AASHIMA, "password": DEMO_PASSWORD})
    assert (answer.status, answer.headers["Location"]) == (303, f"/profile/{AASHIMA}")
    again = client.get("/profile" + query)
    assert (again.status, again.headers["Location"]) == (302, f"/profile/{AASHIMA}")
    boss = Client(demo)
    boss.get("/management/login")
    answer = boss.post("/management/login" + query, {"username": DEMO_MANAGER,
                                                      "password": DEMO_PASSWORD})
    assert (answer.status, answer.headers["Location"]) == (303, "/management")
    again = boss.get("/management/login" + query)
    assert (again.status, again.headers["Location"]) == (302, "/management")


def test_a_local_next_page_is_still_followed(demo: ServerProcess) -> None:
    asked = f"/profile/{AASHIMA}/consumption?period=current-week"
    client = Client(demo)
    answer = client.post("/profile?next=" + urllib.parse.quote(asked),
                         {"meter_id": AASHIMA, "password": DEMO_PASSWORD})
    assert answer.headers["Location"] == asked


# -- sessions end -------------------------------------------------------------------------
def saved_cookie(client: Client) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{c.name}={c.value}" for c in client.jar)}


def get_with(server: ServerProcess, path: str, headers: dict[str, str]) -> int:
    """GET ``path`` with only these headers (a saved cookie), not following redirects."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(server.url + path, headers={**headers,
                                                                  "Accept": "text/html"})
    try:
        with opener.open(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_a_saved_cookie_is_dead_after_logout(demo: ServerProcess) -> None:
    client = resident(demo)
    cookie = saved_cookie(client)
    assert get_with(demo, f"/profile/{AASHIMA}", cookie) == 200
    assert client.post("/logout", {}).status == 303
    assert get_with(demo, f"/profile/{AASHIMA}", cookie) == 302
    assert client.get(f"/profile/{AASHIMA}").status == 302


def test_a_saved_manager_cookie_is_dead_after_logout(demo: ServerProcess) -> None:
    client = manager(demo)
    cookie = saved_cookie(client)
    assert get_with(demo, "/management", cookie) == 200
    assert client.post("/management/logout", {}).status == 303
    assert get_with(demo, "/management", cookie) == 302
    assert get_with(demo, "/api/v1/today", cookie) == 403


def test_logout_needs_a_post_with_the_xsrf_token(demo: ServerProcess) -> None:
    client = resident(demo)
    assert client.get("/logout").status == 405
    assert client.post("/logout", {}, xsrf=False).status == 403
    assert client.get(f"/profile/{AASHIMA}").status == 200


def test_a_signed_cookie_without_a_session_on_the_server_is_refused(
        demo: ServerProcess) -> None:
    secret = (demo.data_dir / "cookie.secret").read_text().strip()
    for name, value in (("session", "made-up-token"), ("user", f"resident:{AASHIMA}")):
        forged = tornado.web.create_signed_value(secret, name, value).decode()
        assert get_with(demo, f"/profile/{AASHIMA}", {"Cookie": f"{name}={forged}"}) == 302


def test_the_operator_revokes_every_session_of_a_user(demo: ServerProcess) -> None:
    phone, laptop, other = resident(demo), resident(demo), resident(demo, CARLOS)
    done = subprocess.run(
        [sys.executable, "-m", "metermatrix", "sessions", "revoke", "--user", "999-999-999",
         "--data-dir", str(demo.data_dir)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("revoked ") and "resident:999999999" in done.stdout
    assert phone.get(f"/profile/{AASHIMA}").status == 302
    assert laptop.get(f"/profile/{AASHIMA}").status == 302
    assert other.get(f"/profile/{CARLOS}").status == 200


# -- the throttle ---------------------------------------------------------------------
def burst(server: ServerProcess, path: str, form: dict[str, str], count: int) -> list[int]:
    """``count`` concurrent POSTs of ``form`` with one XSRF token; their statuses."""
    client = Client(server)
    client.get(path)
    token = client.cookie("_xsrf") or ""
    body = urllib.parse.urlencode({**form, "_xsrf": token}).encode()

    def post(_: int) -> int:
        request = urllib.request.Request(server.url + path, data=body, method="POST",
                                         headers={"Cookie": f"_xsrf={token}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=50) as pool:
        return list(pool.map(post, range(count)))


def test_a_burst_of_wrong_resident_passwords_tries_only_the_free_attempts(
        make_server: type[ServerProcess]) -> None:
    server = make_server(demo=True)
    statuses = burst(server, "/profile", {"meter_id": AASHIMA, "password": "guess"}, 200)
    assert statuses.count(401) == ACCOUNT_RULE.free
    assert statuses.count(429) == 200 - ACCOUNT_RULE.free


def test_a_burst_of_wrong_manager_passwords_tries_only_the_free_attempts(
        make_server: type[ServerProcess]) -> None:
    server = make_server(demo=True)
    statuses = burst(server, "/management/login",
                     {"username": DEMO_MANAGER, "password": "guess"}, 200)
    assert statuses.count(401) == ACCOUNT_RULE.free
    assert statuses.count(429) == 200 - ACCOUNT_RULE.free


def test_logging_into_ones_own_account_does_not_reset_guesses_at_another(
        make_server: type[ServerProcess]) -> None:
    server = make_server(demo=True)
    guesser, tried = Client(server), 0
    for _ in range(4):
        for _ in range(4):
            tried += guesser.login(AASHIMA, "guess").status == 401
        assert guesser.login(CARLOS, DEMO_PASSWORD).status == 303  # the guesser's own
    assert tried == ACCOUNT_RULE.free
    refused = guesser.login(AASHIMA, DEMO_PASSWORD)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert Client(server).login(CARLOS, DEMO_PASSWORD).status == 303


def test_one_address_guessing_many_accounts_is_slowed_for_both_logins(
        make_server: type[ServerProcess]) -> None:
    server = make_server(demo=True)
    client = Client(server)
    for number in range(ADDRESS_RULE.free):
        assert client.login(f"{200_000_000 + number}", "guess").status == 401
    assert client.login(CARLOS, DEMO_PASSWORD).status == 429
    client.get("/management/login")
    boss = client.post("/management/login", {"username": DEMO_MANAGER,
                                              "password": DEMO_PASSWORD})
    assert boss.status == 429 and "Too many failed attempts" in boss.text


def test_the_throttle_survives_a_restart(make_server: type[ServerProcess]) -> None:
    server = make_server(demo=True)
    for _ in range(ACCOUNT_RULE.free):
        assert Client(server).login(AASHIMA, "guess").status == 401
    server.restart()
    assert Client(server).login(AASHIMA, DEMO_PASSWORD).status == 429


def test_the_throttle_state_is_in_the_master_database(tmp_path: Path,
                                                      make_server: type[ServerProcess]) -> None:
    import sqlite3

    server = make_server(demo=True)
    Client(server).login(AASHIMA, "guess")
    with sqlite3.connect(server.data_dir / "metermatrix.sqlite3") as db:
        rows = dict(db.execute("SELECT key, attempts FROM login_attempts").fetchall())
    assert rows == {f"resident:{AASHIMA}": 1, "address:127.0.0.1": 1}


# -- proof of ownership ---------------------------------------------------------------
def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metermatrix", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def utility(tmp_path: Path, make_server: type[ServerProcess]) -> ServerProcess:
    """A server whose master database knows Aashima's meter and FIN, with no accounts."""
    import orjson

    from metermatrix.demo import DEMO_FILE

    entry = orjson.loads(DEMO_FILE.read_bytes())[AASHIMA]
    (tmp_path / "one.json").write_bytes(orjson.dumps({AASHIMA: entry}))
    assert cli("import", tmp_path / "one.json", "--data-dir", tmp_path / "data").returncode == 0
    return make_server(tmp_path / "data")


def sign_up(server: ServerProcess, code: str, fin: str = "A3389127I",
            meter: str = AASHIMA) -> object:
    form = {"name": "Aashima", "fin_no": fin, "meter_id": meter, "activation_code": code,
            "region": "West", "password": "a long enough password",
            "password_confirm": "a long enough password"}
    return Client(server).post("/register", form)


def test_registration_needs_the_activation_code_and_the_fin_on_record(
        utility: ServerProcess) -> None:
    printed = cli("activation-code", AASHIMA, "--data-dir", utility.data_dir)
    assert printed.returncode == 0, printed.stderr
    code = printed.stdout.strip()
    assert len(code) == 11 and code[5] == "-"
    other_code = cli("activation-code", "555555555", "--data-dir", utility.data_dir)
    mismatch = "do not match the utility&#x27;s records"
    for answer in (sign_up(utility, other_code.stdout.strip()),  # another meter's code
                   sign_up(utility, code, fin="G1234567X")):  # a FIN not on record
        assert answer.status == 400 and mismatch in answer.text  # type: ignore[attr-defined]
        assert "already has an account" not in answer.text  # type: ignore[attr-defined]
    assert Client(utility).login(AASHIMA, "a long enough password").status == 401
    answer = sign_up(utility, code.lower().replace("-", " "))
    assert answer.status == 303  # type: ignore[attr-defined]
    taken = sign_up(utility, code)
    assert "already has an account" in taken.text  # type: ignore[attr-defined]


def test_wrong_activation_codes_count_against_the_throttle(utility: ServerProcess) -> None:
    code = cli("activation-code", AASHIMA, "--data-dir", utility.data_dir).stdout.strip()
    for _ in range(ACCOUNT_RULE.free):
        assert sign_up(utility, "ABCDE-FGHJK").status == 400  # type: ignore[attr-defined]
    refused = sign_up(utility, code)
    assert refused.status == 429  # type: ignore[attr-defined]
    assert "Too many failed attempts" in refused.text  # type: ignore[attr-defined]


def test_every_meters_code_is_written_as_csv_for_the_bills(utility: ServerProcess,
                                                          tmp_path: Path) -> None:
    import csv

    out = tmp_path / "codes.csv"
    done = cli("activation-code", "--all", "--out", out, "--data-dir", utility.data_dir)
    assert done.returncode == 0 and "wrote 1 activation codes" in done.stdout
    rows = list(csv.DictReader(out.open()))
    single = cli("activation-code", AASHIMA, "--data-dir", utility.data_dir).stdout.strip()
    assert rows == [{"meter_id": AASHIMA, "name": "Aashima", "region": rows[0]["region"],
                     "activation_code": single}]
    assert (utility.data_dir / "activation.key").stat().st_mode & 0o777 == 0o600
    assert cli("activation-code", "1", "--data-dir", tmp_path / "nowhere").returncode == 1


# -- password change and reset ----------------------------------------------------------
def test_changing_the_password_ends_every_other_session(
        make_server: type[ServerProcess]) -> None:
    server = make_server(demo=True)
    phone, laptop = resident(server, CARLOS), resident(server, CARLOS)
    page = f"/profile/{CARLOS}/password"
    assert 'name="old_password"' in laptop.get(page).text
    new = {"password": "a brand new password", "password_confirm": "a brand new password"}
    wrong = laptop.post(page, {"old_password": "not it", **new})
    assert wrong.status == 400 and "not your current password" in wrong.text
    assert laptop.post(page, {"old_password": DEMO_PASSWORD, **new}).status == 303
    assert "has been changed" in laptop.get(page + "?changed=1").text
    assert laptop.get(f"/profile/{CARLOS}").status == 200
    assert phone.get(f"/profile/{CARLOS}").status == 302
    assert Client(server).login(CARLOS, DEMO_PASSWORD).status == 401
    assert Client(server).login(CARLOS, "a brand new password").status == 303
    assert phone.post(f"/profile/{AASHIMA}/password",
                      {"old_password": DEMO_PASSWORD, **new}).status == 403
    assert Client(server).login(AASHIMA, DEMO_PASSWORD).status == 303


def test_a_reset_needs_the_activation_code_and_the_fin_and_ends_every_session(
        make_server: type[ServerProcess]) -> None:
    from metermatrix.activation import activation_code, load_activation_key

    server = make_server(demo=True)
    phone = resident(server)
    code = activation_code(load_activation_key(server.data_dir), int(AASHIMA))
    form = {"meter_id": AASHIMA, "activation_code": code, "fin_no": "A3389127I",
            "password": "a brand new password", "password_confirm": "a brand new password"}
    for wrong in ({"fin_no": "A1234567I"}, {"activation_code": "ABCDE-FGHJK"},
                  {"meter_id": "123456789"}):
        answer = Client(server).post("/reset", {**form, **wrong})
        assert answer.status == 400 and "do not match the utility" in answer.text
    assert phone.get(f"/profile/{AASHIMA}").status == 200
    resetter = Client(server)
    assert resetter.post("/reset", form).headers["Location"] == f"/profile/{AASHIMA}"
    assert resetter.get(f"/profile/{AASHIMA}").status == 200
    assert phone.get(f"/profile/{AASHIMA}").status == 302
    assert Client(server).login(AASHIMA, "a brand new password").status == 303
