"""Residents' passwords: change (old password, new twice) and reset (activation code + FIN).

Routes (see ``password_routes``): ``/profile/{meterId}/password`` and ``/reset``. Both
checks are counted by the login throttle first; both end every other session of the
account. There is no e-mail here: a reset proves ownership the way registration does.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from metermatrix.accounts import hash_password, verify_password
from metermatrix.activation import normalise_code
from metermatrix.sessions import resident_user, revoke_sessions
from metermatrix.storage import Storage
from metermatrix.web.residentpage import ResidentPage, ResidentState, parse_meter_text
from metermatrix.web.residents import (
    FIN_PATTERN,
    MAX_PASSWORD,
    MIN_PASSWORD,
    MISMATCH,
    in_thread,
    proves_ownership,
)

RESET_FIELDS = ("meter_id", "activation_code", "fin_no")


def new_password_errors(form: dict[str, str]) -> dict[str, str]:
    """A message per invalid new-password field (empty when both are fine)."""
    password = form.get("password", "")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return {"password": f"Use at least {MIN_PASSWORD} characters."}
    if password != form.get("password_confirm", ""):
        return {"password_confirm": "The two passwords are not the same."}
    return {}


def replace_password(storage: Storage, meter_id: int, password_hash: str,
                     keep_token: str | None) -> bool:
    """Store the new hash and end every other session of the account, in one commit."""
    with storage.transaction():
        if not storage.set_resident_password(meter_id, password_hash):
            return False
        revoke_sessions(storage, resident_user(meter_id), keep_token)
    return True


class PasswordHandler(ResidentPage):
    """/profile/{meterId}/password: the logged-in resident changes their password."""

    @tornado.web.authenticated
    def get(self, meter_text: str) -> None:
        self.render("password.html", meter_id=self.own_meter(meter_text), errors={},
                    changed=self.get_argument("changed", "") == "1")

    @tornado.web.authenticated
    async def post(self, meter_text: str) -> None:
        meter_id = self.own_meter(meter_text)
        form = {key: self.get_body_argument(key, "")
                for key in ("old_password", "password", "password_confirm")}
        errors = new_password_errors(form) or await self.check_old(meter_id, form)
        if errors:
            if self.get_status() != 429:
                self.set_status(400)
            self.render("password.html", meter_id=meter_id, errors=errors, changed=False)
            return
        password_hash = await in_thread(hash_password, form["password"])
        token = self.session_token()
        await self.write_job(lambda s: replace_password(s, meter_id, password_hash, token))
        self.redirect(f"/profile/{meter_id}/password?changed=1", status=303)

    async def check_old(self, meter_id: int, form: dict[str, str]) -> dict[str, str]:
        """An error unless the old password is right (a counted attempt)."""
        account = resident_user(meter_id)
        if wait_s := await self.reserve_attempt(account):
            return {"_form": f"Too many failed attempts. Try again in {wait_s} seconds."}
        stored = self.service.storage.resident_password_hash(meter_id)
        if not await in_thread(verify_password, stored, form["old_password"]):
            return {"old_password": "That is not your current password."}
        await self.attempt_succeeded(account)
        return {}


class ResetHandler(ResidentPage):
    """/reset: a new password for a meter's account, proved by activation code and FIN."""

    def get(self) -> None:
        self.render("reset.html", form={}, errors={})

    async def post(self) -> None:
        form = {key: self.get_body_argument(key, "").strip() for key in RESET_FIELDS}
        passwords = {key: self.get_body_argument(key, "")
                     for key in ("password", "password_confirm")}
        meter_id = parse_meter_text(form["meter_id"], typed=True)
        errors = new_password_errors(passwords)
        if meter_id is None:
            errors["meter_id"] = "A meter ID has 9 digits, e.g. 999999999 or 999-999-999."
        if normalise_code(form["activation_code"]) is None:
            errors["activation_code"] = "The code on your bill has 10 letters and digits."
        if not FIN_PATTERN.fullmatch(form["fin_no"].upper()):
            errors["fin_no"] = "A FIN is one letter, 7 digits and one letter, e.g. A3389127I."
        if not errors and meter_id is not None:
            errors = await self.reset(meter_id, form, passwords["password"])
            if not errors:
                self.redirect(f"/profile/{meter_id}", status=303)
                return
        if self.get_status() != 429:
            self.set_status(400)
        self.render("reset.html", form=form, errors=errors)

    async def reset(self, meter_id: int, form: dict[str, str], password: str
                    ) -> dict[str, str]:
        """Check ownership (a counted attempt), store the password, end all sessions, log in."""
        account = resident_user(meter_id)
        if wait_s := await self.reserve_attempt(account):
            return {"_form": f"Too many failed attempts. Try again in {wait_s} seconds."}
        storage = self.service.storage
        has_account = storage.resident_password_hash(meter_id) is not None
        if not (proves_ownership(storage, self.activation_key, meter_id, form["fin_no"],
                                 form["activation_code"], fin_required=True) and has_account):
            return {"_form": MISMATCH}
        await self.attempt_succeeded(account)
        password_hash = await in_thread(hash_password, password)
        await self.write_job(lambda s: replace_password(s, meter_id, password_hash, None))
        await self.login(account)
        return {}


def password_routes() -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The password routes."""
    state = ResidentState()
    return [
        (r"/profile/([0-9][0-9-]{0,14})/password", PasswordHandler, {"state": state}),
        (r"/reset", ResetHandler, {"state": state}),
    ]
