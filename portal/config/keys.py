"""The portal's OpenID Connect signing key: where it comes from, and the key material the generated secrets need
(`portal.config.env.generate_secrets`, kept under var/secrets/).

The portal signs ID tokens with the private key; the hub checks their signature with the public half
(hubconfig/authenticator.py), so both read the key from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:
    from portal.config.env import Env


def new_rsa_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def oidc_private_key_pem(env: Env, generate: bool) -> str:
    """OIDC_RSA_PRIVATE_KEY (with `\\n` for line breaks), else the file OIDC_RSA_PRIVATE_KEY_FILE names, else
    (when `generate`, outside prod) the generated one. Raises EnvError naming the key when none is there."""
    from portal.config.env import EnvError, read_generated_secret

    pem = env.get("OIDC_RSA_PRIVATE_KEY").replace("\\n", "\n")
    if pem:
        return pem
    if path := env.get("OIDC_RSA_PRIVATE_KEY_FILE"):
        try:
            with open(path, encoding="ascii") as fh:
                return fh.read()
        except OSError as exc:
            raise EnvError(f"OIDC_RSA_PRIVATE_KEY_FILE={path}: {exc.strerror}") from None
    if not generate:
        raise EnvError("OIDC_RSA_PRIVATE_KEY_FILE must be set in .env")
    return read_generated_secret("OIDC_RSA_PRIVATE_KEY_PEM")


def public_key_pem(private_pem: str) -> str:
    """The public half of a PEM private key, as PEM (what the hub needs to check an ID token's signature)."""
    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
