"""Password hashers: Django's PBKDF2 with a bound on checks running at once, and a fast one for client secrets.

`PBKDF2PasswordHasher` (user passwords) is Django's own, same algorithm name and same stored hashes, except
that at most PASSWORD_CHECKS_AT_ONCE checks (default: one per CPU core) run at once in a process. A check is
about half a second of pure CPU on purpose and releases the GIL, so during a class's login burst every
thread of the portal would be hashing at once: the cores are shared by all of them, each login takes
longer, and ordinary pages queue behind them. Bounded, the extra logins wait their turn without using CPU,
the same number finish per second, and pages keep the CPU they need. The waiting checks go in the order they
came (`CheckSlots`): with threading.Semaphore a check that arrives just as a slot is freed takes it from the
one that was woken for it, and in a steady stream of logins one student waited past the proxy's 20 s timeout.

`ClientSecretHasher` is for OAuth client secrets only. Why: django-oauth-toolkit stores client secrets hashed with a Django password hasher, by default the slow
PBKDF2 used for passwords, so every token request (each student login, each hub token refresh) would pay a
second deliberately slow hash. That slowness protects low-entropy human passwords; a client secret is 48
random bytes, which no amount of fast guessing can find, so one SHA-256 keeps it safe at rest for free.
Never use this for user passwords: it is listed after PBKDF2 in PASSWORD_HASHERS, so it is never the default.
"""

import base64
import collections
import functools
import hashlib
import threading

from django.conf import settings
from django.contrib.auth import hashers
from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_noop as _


class CheckSlots:
    """At most `at_once` holders; the others wait in arrival order. A freed slot is handed to the oldest
    waiter directly, so no later arrival can take it first."""

    def __init__(self, at_once: int):
        self._lock = threading.Lock()
        self._free = at_once
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def __enter__(self):
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return self
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder that hands its slot over
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1

    @property
    def waiting(self) -> int:
        return len(self._waiting)


@functools.cache
def _check_slots(at_once: int) -> CheckSlots:
    return CheckSlots(at_once)


class PBKDF2PasswordHasher(hashers.PBKDF2PasswordHasher):
    def encode(self, password, salt, iterations=None):
        with _check_slots(
            settings.PASSWORD_CHECKS_AT_ONCE
        ):  # verify() and the dummy check for unknown names come through here too
            return super().encode(password, salt, iterations)


class ClientSecretHasher(BasePasswordHasher):
    algorithm = "cfps_client_sha256"

    def encode(self, password, salt):
        self._check_encode_args(password, salt)
        digest = hashlib.sha256(f"{salt}${password}".encode()).digest()
        return f"{self.algorithm}${salt}${base64.b64encode(digest).decode('ascii')}"

    def decode(self, encoded):
        algorithm, salt, digest = encoded.split("$", 2)
        assert algorithm == self.algorithm
        return {"algorithm": algorithm, "hash": digest, "salt": salt}

    def verify(self, password, encoded):
        decoded = self.decode(encoded)
        return constant_time_compare(encoded, self.encode(password, decoded["salt"]))

    def safe_summary(self, encoded):
        decoded = self.decode(encoded)
        return {
            _("algorithm"): decoded["algorithm"],
            _("salt"): mask_hash(decoded["salt"]),
            _("hash"): mask_hash(decoded["hash"]),
        }

    def must_update(self, encoded):
        return False

    def harden_runtime(self, password, encoded):
        pass
