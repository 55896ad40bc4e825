"""The login throttle: attempts counted per account and per client address, in the database.

Every password check (resident and management logins, registration, password change and
reset) first *reserves* an attempt: in one transaction the waits of its keys are checked
and, if none must wait, one attempt is counted against each key. Only then is the password
hashed, so a burst of concurrent guesses cannot pass the limit. A success clears the
account's count and takes its own attempt back from the address; the failures before it
stay counted. The state lives in the master database, so it survives a restart and is
shared by every login form.
"""

from __future__ import annotations

from dataclasses import dataclass

from metermatrix.storage import Storage


@dataclass(frozen=True)
class ThrottleRule:
    """After ``free`` attempts each try waits ``base_s``, doubling up to ``max_s`` [s].

    A key left alone for ``window_s`` starts afresh.
    """

    free: int
    base_s: float
    max_s: float
    window_s: float

    def wait_s(self, attempts: int, last_s: float, now_s: float) -> float:
        """Seconds still to wait after ``attempts`` counted, the last at ``last_s``."""
        if attempts < self.free or now_s - last_s > self.window_s:
            return 0.0
        wait = min(self.base_s * 2.0 ** (attempts - self.free), self.max_s)
        return max(0.0, last_s + wait - now_s)


#: One account: five tries, then 30 s, 60 s, ... up to 15 minutes between tries.
ACCOUNT_RULE = ThrottleRule(free=5, base_s=30.0, max_s=900.0, window_s=3600.0)
#: One client address, over all accounts (households may share an address).
ADDRESS_RULE = ThrottleRule(free=20, base_s=30.0, max_s=900.0, window_s=3600.0)
#: How often stale keys are forgotten [s].
PURGE_EVERY_S = 600.0


def address_key(address: str) -> str:
    """The throttle key of a client address."""
    return f"address:{address}"


class LoginThrottle:
    """Reserve and settle login attempts; its methods run on the database writer thread."""

    def __init__(self, account: ThrottleRule = ACCOUNT_RULE,
                 address: ThrottleRule = ADDRESS_RULE) -> None:
        self.account = account
        self.address = address
        self._purged_s = 0.0

    def _keys(self, account_key: str | None, address: str) -> list[tuple[str, ThrottleRule]]:
        keys = [(address_key(address), self.address)]
        if account_key is not None:
            keys.append((account_key, self.account))
        return keys

    def reserve(self, storage: Storage, account_key: str | None, address: str,
                now_s: float) -> float:
        """Count one attempt against the account and the address; 0, or the wait [s] if refused."""
        keys = self._keys(account_key, address)
        with storage.transaction():
            states = {key: storage.login_attempts(key) or (0, now_s) for key, _ in keys}
            wait_s = max(rule.wait_s(*states[key], now_s) for key, rule in keys)
            if wait_s > 0:
                return wait_s
            for key, rule in keys:
                attempts, last_s = states[key]
                fresh = now_s - last_s > rule.window_s
                storage.set_login_attempts(key, 1 if fresh else attempts + 1, now_s)
            if now_s - self._purged_s > PURGE_EVERY_S:
                self._purged_s = now_s
                storage.delete_login_attempts_before(
                    now_s - max(self.account.window_s, self.address.window_s))
        return 0.0

    def succeeded(self, storage: Storage, account_key: str, address: str) -> None:
        """The attempt was right: clear the account and give the address its attempt back."""
        with storage.transaction():
            storage.set_login_attempts(account_key, 0, 0.0)
            state = storage.login_attempts(address_key(address))
            if state is not None:
                storage.set_login_attempts(address_key(address), state[0] - 1, state[1])
