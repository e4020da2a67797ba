"""Signed checkpoints: a Merkle tree head, signed so that anyone holding the public key
can check it and no one without the private key can forge or edit it.

Formats (C2SP tlog-checkpoint inside a C2SP signed note, Ed25519 signature type 0x01):

    <origin>
    <tree size in decimal>
    <base64 root hash>

    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>

key id = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4].

Key files use the golang.org/x/mod/sumdb/note encodings, one line each:

- private key ("skey"), written with mode 0600:
  `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte Ed25519 seed)>`
- verifier key ("vkey"), safe to publish:
  `<name>+<key id hex>+<base64(0x01 || 32-byte Ed25519 public key)>`

Checkpoints with extension lines are refused: nothing here produces them, and a
`Checkpoint` would have nowhere to carry them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kiteline_proofs.errors import AuditError, CheckpointInvalid

ROOT_HASH_SIZE = 32
MAX_TREE_SIZE = 2**64 - 1
MAX_NOTE_SIZE = 1 << 16

_ED25519_TYPE = b"\x01"
_ED25519_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
_SIGNATURE_LINE_PREFIX = "\u2014 "  # em dash, space
_SKEY_PREFIX = "PRIVATE+KEY+"
# The signed-note spec requires accepting at least 16; a cap bounds work per note.
_MAX_SIGNATURES = 64
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_Key = TypeVar("_Key", Ed25519PrivateKey, Ed25519PublicKey)

PathLike = str | os.PathLike[str]


class KeyInvalid(AuditError):
    """A signing or verifier key, or its key name, is malformed."""


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 key with this name."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519_TYPE + public_key).digest()[:4]


def _text_problem(text: str) -> str | None:
    """Why `text` cannot appear in a signed note, or None if it can."""
    for character in text:
        if character < " " and character != "\n":
            return f"control character {character!r} is not allowed in a signed note"
        if "\ud800" <= character <= "\udfff":
            return "unpaired surrogate is not valid UTF-8"
    return None


def _key_name_problem(name: str) -> str | None:
    if not name:
        return "key name is empty"
    if "+" in name or any(character.isspace() for character in name):
        return f"key name {name!r} contains a space or '+'"
    return _text_problem(name)


def _require_key_name(name: str) -> None:
    problem = _key_name_problem(name)
    if problem:
        raise KeyInvalid(problem)


def _decode_base64(text: str) -> bytes | None:
    """Strict standard base64: right alphabet, right padding, canonical form; None if not."""
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Non-canonical encodings (stray bits in the last character) would give one value
    # several spellings; refuse them so every accepted note has one form.
    if base64.b64encode(decoded).decode("ascii") != text:
        return None
    return decoded


def _encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Checkpoint:
    """A Merkle tree head: the log's identity, its size and its RFC 6962 root."""

    origin: str
    tree_size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin:
            raise ValueError("checkpoint origin is empty")
        if "\n" in self.origin:
            raise ValueError("checkpoint origin contains a newline")
        problem = _text_problem(self.origin)
        if problem:
            raise ValueError(problem)
        if not 0 <= self.tree_size <= MAX_TREE_SIZE:
            raise ValueError(f"tree size {self.tree_size} is outside 0..2**64-1")
        if len(self.root_hash) != ROOT_HASH_SIZE:
            raise ValueError(f"root hash is {len(self.root_hash)} bytes, expected 32")

    def body(self) -> bytes:
        """The note text that gets signed: origin, size and root, one per line."""
        root = _encode_base64(self.root_hash)
        return f"{self.origin}\n{self.tree_size}\n{root}\n".encode()

    @classmethod
    def from_body(cls, body: str | bytes) -> Checkpoint:
        """Parse a checkpoint body; raise `CheckpointInvalid` unless it is well formed."""
        text = _decode_note(body)
        if not text.endswith("\n"):
            raise CheckpointInvalid("checkpoint body does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointInvalid("checkpoint body needs three lines: origin, tree size, root")
        if len(lines) > 3:
            raise CheckpointInvalid("checkpoint extension lines are not supported")
        origin, size_text, root_text = lines
        if not _DECIMAL.fullmatch(size_text):
            raise CheckpointInvalid(f"tree size {size_text!r} is not a canonical decimal number")
        tree_size = int(size_text)
        if tree_size > MAX_TREE_SIZE:
            raise CheckpointInvalid(f"tree size {size_text} does not fit in 64 bits")
        root_hash = _decode_base64(root_text)
        if root_hash is None:
            raise CheckpointInvalid(f"root hash {root_text!r} is not canonical base64")
        try:
            return cls(origin=origin, tree_size=tree_size, root_hash=root_hash)
        except ValueError as exc:
            raise CheckpointInvalid(str(exc)) from exc


def _decode_note(note: str | bytes) -> str:
    # Checkpoints are a few hundred bytes; a cap bounds the work a hostile note can cause.
    if len(note) > MAX_NOTE_SIZE:
        raise CheckpointInvalid(f"signed note is longer than {MAX_NOTE_SIZE} bytes")
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointInvalid("signed note is not valid UTF-8") from exc
    problem = _text_problem(note)
    if problem:
        raise CheckpointInvalid(problem)
    return note


def _public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


class Signer:
    """Signs checkpoints (and any signed-note text) with one named Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey, name: str) -> None:
        _require_key_name(name)
        self._private_key = private_key
        self.name = name
        self.public_key = private_key.public_key()
        self.key_id = ed25519_key_id(name, _public_key_bytes(self.public_key))

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()!r})"

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A signer with a fresh random key."""
        return cls(Ed25519PrivateKey.generate(), name)

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>`."""
        text = skey.strip()
        if not text.startswith(_SKEY_PREFIX):
            raise KeyInvalid("private key does not start with PRIVATE+KEY+")
        name, key_id_hex, private_key = _parse_key(
            text[len(_SKEY_PREFIX) :],
            "private key",
            Ed25519PrivateKey.from_private_bytes,
            "an Ed25519 seed",
        )
        signer = cls(private_key, name)
        _check_key_id(signer.key_id, key_id_hex, "private key")
        return signer

    def skey(self) -> str:
        """The private key in the signed-note signer key encoding. Keep it secret."""
        seed = self._private_key.private_bytes_raw()
        return (
            f"{_SKEY_PREFIX}{self.name}+{self.key_id.hex()}+{_encode_base64(_ED25519_TYPE + seed)}"
        )

    def verifier(self) -> Verifier:
        return Verifier(self.public_key, self.name)

    def sign_text(self, text: str) -> str:
        """Sign arbitrary note text (which must end with a newline); return the signed note."""
        problem = _text_problem(text)
        if problem:
            raise ValueError(problem)
        if not text.endswith("\n"):
            raise ValueError("signed-note text must end with a newline")
        signature = self._private_key.sign(text.encode())
        encoded = _encode_base64(self.key_id + signature)
        return f"{text}\n{_SIGNATURE_LINE_PREFIX}{self.name} {encoded}\n"

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note carrying `checkpoint`."""
        return self.sign_text(checkpoint.body().decode())


class Verifier:
    """Checks signed notes and checkpoints against one named Ed25519 public key."""

    def __init__(self, public_key: Ed25519PublicKey, name: str) -> None:
        _require_key_name(name)
        self.public_key = public_key
        self.name = name
        self.key_id = ed25519_key_id(name, _public_key_bytes(public_key))

    def __repr__(self) -> str:
        return f"Verifier({self.vkey()!r})"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse `<name>+<key id hex>+<base64(0x01 || public key)>`."""
        name, key_id_hex, public_key = _parse_key(
            vkey.strip(), "verifier key", Ed25519PublicKey.from_public_bytes, "an Ed25519 key"
        )
        verifier = cls(public_key, name)
        _check_key_id(verifier.key_id, key_id_hex, "verifier key")
        return verifier

    def vkey(self) -> str:
        """The public key in the signed-note verifier key encoding."""
        raw = _public_key_bytes(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{_encode_base64(_ED25519_TYPE + raw)}"

    def open(self, note: str | bytes) -> str:
        """Return the text of a signed note once a signature by this key verifies.

        Signatures by other keys are ignored (they may be witnesses or a rotated
        key), as the signed-note spec requires; a bad signature by this key, or none
        at all, raises `CheckpointInvalid`.
        """
        text = _decode_note(note)
        separator = text.rfind("\n\n")
        if separator < 0:
            raise CheckpointInvalid("no blank line separates the note text from its signatures")
        body = text[: separator + 1]
        signature_block = text[separator + 2 :]
        if not signature_block:
            raise CheckpointInvalid("note has no signature lines")
        if not signature_block.endswith("\n"):
            raise CheckpointInvalid("signature block does not end with a newline")
        lines = signature_block[:-1].split("\n")
        if len(lines) > _MAX_SIGNATURES:
            raise CheckpointInvalid(f"note has more than {_MAX_SIGNATURES} signatures")

        verified = False
        for line in lines:
            name, key_id, signature = _parse_signature_line(line)
            if name != self.name or key_id != self.key_id:
                continue
            if len(signature) != _ED25519_SIGNATURE_SIZE:
                raise CheckpointInvalid(f"signature by {name} is {len(signature)} bytes, not 64")
            try:
                self.public_key.verify(signature, body.encode())
            except InvalidSignature as exc:
                raise CheckpointInvalid(f"signature by {name} does not verify") from exc
            verified = True
        if not verified:
            raise CheckpointInvalid(f"note is not signed by {self.name}+{self.key_id.hex()}")
        return body

    def verify(self, note: str | bytes, *, origin: str | None = None) -> Checkpoint:
        """The checkpoint in a signed note, once its signature and format check out.

        Pass `origin` to also refuse checkpoints of another log signed by the same key.
        """
        checkpoint = Checkpoint.from_body(self.open(note))
        if origin is not None and checkpoint.origin != origin:
            raise CheckpointInvalid(
                f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}"
            )
        return checkpoint


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    if not line.startswith(_SIGNATURE_LINE_PREFIX):
        raise CheckpointInvalid(f"signature line {line!r} does not start with an em dash")
    fields = line[len(_SIGNATURE_LINE_PREFIX) :].split(" ")
    if len(fields) != 2:
        raise CheckpointInvalid(f"signature line {line!r} is not '— <key name> <signature>'")
    name, encoded = fields
    problem = _key_name_problem(name)
    if problem:
        raise CheckpointInvalid(f"signature line has a bad key name: {problem}")
    decoded = _decode_base64(encoded)
    if decoded is None or len(decoded) <= _KEY_ID_SIZE:
        raise CheckpointInvalid(f"signature by {name} is not base64 of a key id and signature")
    return name, decoded[:_KEY_ID_SIZE], decoded[_KEY_ID_SIZE:]


def _parse_key(
    text: str, what: str, load: Callable[[bytes], _Key], material: str
) -> tuple[str, str, _Key]:
    """The name, key id (hex) and key of `<name>+<key id hex>+<base64(0x01 || key)>`:
    `load` builds the key from its raw bytes, which must be `material`."""
    name, key_id_hex, encoded = _split_key(text, what)
    _require_key_name(name)
    raw = _decode_typed_key(encoded, what)
    try:
        key = load(raw)
    except ValueError as exc:
        raise KeyInvalid(f"{what} material is not {material}: {exc}") from exc
    return name, key_id_hex, key


def _check_key_id(key_id: bytes, key_id_hex: str, what: str) -> None:
    if key_id.hex() != key_id_hex:
        raise KeyInvalid(f"{what} id {key_id_hex} does not match its key material")


def _split_key(text: str, what: str) -> tuple[str, str, str]:
    # Names and key ids never hold '+', but base64 may: split at most twice.
    fields = text.split("+", 2)
    if len(fields) != 3:
        raise KeyInvalid(f"{what} is not <name>+<key id hex>+<base64 key>")
    name, key_id_hex, encoded = fields
    if not _KEY_ID_HEX.fullmatch(key_id_hex):
        raise KeyInvalid(f"{what} id {key_id_hex!r} is not 8 lowercase hex digits")
    return name, key_id_hex, encoded


def _decode_typed_key(encoded: str, what: str) -> bytes:
    decoded = _decode_base64(encoded)
    if decoded is None:
        raise KeyInvalid(f"{what} material is not canonical base64")
    if decoded[:1] != _ED25519_TYPE:
        raise KeyInvalid(f"{what} is not an Ed25519 (type 0x01) key")
    if len(decoded) != 1 + _ED25519_KEY_SIZE:
        raise KeyInvalid(f"{what} is {len(decoded) - 1} bytes, expected 32")
    return decoded[1:]


def generate_key_pair(name: str) -> tuple[Signer, Verifier]:
    """A fresh Ed25519 signer and its verifier, both named `name`."""
    signer = Signer.generate(name)
    return signer, signer.verifier()


def _write_key_file(path: PathLike, text: str, mode: int, *, overwrite: bool) -> None:
    target = Path(path)
    # When replacing, write beside the target and rename over it, so the old key
    # stays intact until the new one is complete.
    staging = target
    if overwrite:
        staging = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL: never follow a planted symlink, never clobber an existing key by accident.
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            # The umask can narrow the mode given to open(); set it exactly.
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if staging != target:
            os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def save_signer(signer: Signer, path: PathLike, *, overwrite: bool = False) -> None:
    """Write the private key (skey line) to `path` with mode 0600.

    Refuses to replace an existing file unless `overwrite` is set.
    """
    _write_key_file(path, signer.skey() + "\n", 0o600, overwrite=overwrite)


def load_signer(path: PathLike) -> Signer:
    """Read a private key written by `save_signer`."""
    return Signer.from_skey(Path(path).read_text(encoding="utf-8"))


def save_verifier(verifier: Verifier, path: PathLike, *, overwrite: bool = False) -> None:
    """Write the public key (vkey line) to `path` with mode 0644."""
    _write_key_file(path, verifier.vkey() + "\n", 0o644, overwrite=overwrite)


def load_verifier(path: PathLike) -> Verifier:
    """Read a verifier key written by `save_verifier` (or any signed-note Ed25519 vkey)."""
    return Verifier.from_vkey(Path(path).read_text(encoding="utf-8"))


__all__ = [
    "ROOT_HASH_SIZE",
    "MAX_TREE_SIZE",
    "MAX_NOTE_SIZE",
    "PathLike",
    "KeyInvalid",
    "ed25519_key_id",
    "Checkpoint",
    "Signer",
    "Verifier",
    "generate_key_pair",
    "save_signer",
    "load_signer",
    "save_verifier",
    "load_verifier",
]
