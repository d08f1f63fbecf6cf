"""A fast, salted hasher for OAuth client secrets only.

Why: django-oauth-toolkit stores client secrets hashed with a Django password hasher, by default the slow
PBKDF2 used for passwords, so every token request (each student login, each hub token refresh) would pay a
second deliberately slow hash. That slowness protects low-entropy human passwords; a client secret is 48
random bytes, which no amount of fast guessing can find, so one SHA-256 keeps it safe at rest for free.
Never use this for user passwords: it is listed after PBKDF2 in PASSWORD_HASHERS, so it is never the default.
"""

import base64
import hashlib

from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_noop as _


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
