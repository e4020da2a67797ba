"""The master key and the keys derived from it.

One 32-byte master key (a file with mode 0600, or an environment variable holding hex)
is the root of all keyed material; HKDF-SHA256 derives a separate key per purpose so a
leak of one derived key reveals nothing about the others or the master.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.config import Config, ConfigError, resolve_secret

MASTER_KEY_BYTES = 32


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def create_master_key(path: Path) -> None:
    write_secret_file(path, secrets.token_hex(MASTER_KEY_BYTES).encode() + b"\n")


def derive(master: bytes, purpose: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=b"kiteline/" + purpose.encode()
    ).derive(master)


class Keyring:
    def __init__(self, master: bytes) -> None:
        if len(master) != MASTER_KEY_BYTES:
            raise ConfigError("the master key must be 32 bytes (64 hex characters)")
        self._master = master
        # Derived keys are pure functions of (master, purpose): memoize per instance.
        self.pseudonym_key = lru_cache(maxsize=65_536)(self._pseudonym_key)
        self.recipient_tag = lru_cache(maxsize=65_536)(self._recipient_tag)

    @classmethod
    def from_config(cls, config: Config) -> Keyring:
        reference = config.gateway.master_key
        if reference.startswith("file:"):
            path = config.resolve_path(reference[len("file:") :])
            if path.exists() and path.stat().st_mode & 0o077:
                raise ConfigError(
                    f"master key {path} must not be readable by group or others (chmod 600)"
                )
        text = resolve_secret(reference, config.base_dir)
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise ConfigError("the master key must be 64 hex characters") from exc

    def _pseudonym_key(self, recipient: str, domain: str, version: int) -> bytes:
        return derive(self._master, f"pseudonym/v{version}/{recipient}/{domain}")

    def _recipient_tag(self, recipient: str, version: int) -> bytes:
        return derive(self._master, f"recipient-tag/v{version}/{recipient}", length=4)

    @property
    def audit_redaction_key(self) -> bytes:
        return derive(self._master, "audit/redaction")

    @property
    def cursor_key(self) -> bytes:
        return derive(self._master, "cursor")

    @property
    def flight_ticket_key(self) -> bytes:
        return derive(self._master, "flight/ticket")
