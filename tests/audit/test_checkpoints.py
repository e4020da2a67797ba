"""Signed checkpoints: signed-note interop vectors, tampering, keys and key files."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.checkpoints import (
    Checkpoint,
    KeyInvalid,
    Signer,
    Verifier,
    ed25519_key_id,
    generate_key_pair,
    load_signer,
    load_verifier,
    save_signer,
    save_verifier,
)
from audit.errors import AuditError, CheckpointInvalid
from audit.merkle import EMPTY_ROOT, leaf_hash

# The example key and note of golang.org/x/mod/sumdb/note (note_test.go and the
# package documentation). Ed25519 is deterministic, so signing the same text with
# the same key must give this exact note: that is what interoperability means here.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n"
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "kiteline.example/audit"
ROOT = leaf_hash(b"some tree")
GO_SIGNED_CHECKPOINT = Signer.from_skey(GO_SKEY).sign(Checkpoint(ORIGIN, 42, ROOT))
BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def non_canonical(encoded: str) -> str:
    """The same bytes spelled differently: set an unused low bit of the last character."""
    data, padding = encoded.rstrip("="), "=" * (len(encoded) - len(encoded.rstrip("=")))
    last = BASE64_ALPHABET[BASE64_ALPHABET.index(data[-1]) ^ 1]
    spelled = data[:-1] + last + padding
    assert base64.b64decode(spelled) == base64.b64decode(encoded)
    return spelled


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture(scope="module")
def verifier(signer: Signer) -> Verifier:
    return signer.verifier()


@pytest.fixture
def note(signer: Signer) -> str:
    return signer.sign(Checkpoint(ORIGIN, 42, ROOT))


def test_signing_reproduces_the_go_signed_note_example() -> None:
    signer = Signer.from_skey(GO_SKEY)
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.skey() == GO_SKEY
    assert signer.sign_text(GO_TEXT) == GO_NOTE
    assert signer.verifier().vkey() == GO_VKEY


def test_verifying_the_go_signed_note_example() -> None:
    verifier = Verifier.from_vkey(GO_VKEY)
    assert verifier.open(GO_NOTE) == GO_TEXT
    assert verifier.open(GO_NOTE.encode()) == GO_TEXT
    with pytest.raises(CheckpointInvalid):
        verifier.open(GO_NOTE.replace("cryptography", "cryptographY"))


def test_key_id_follows_the_signed_note_rule() -> None:
    verifier = Verifier.from_vkey(GO_VKEY)
    public_key = base64.b64decode(GO_VKEY.split("+", 2)[2])[1:]
    assert (
        ed25519_key_id("PeterNeumann", public_key) == verifier.key_id == bytes.fromhex("c74f20a3")
    )


def test_checkpoint_body_is_the_tlog_checkpoint_text() -> None:
    # The example body of the C2SP tlog-checkpoint specification.
    body = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = Checkpoint.from_body(body)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.tree_size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.body() == body


def test_signed_checkpoint_round_trips(signer: Signer, verifier: Verifier) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    note = signer.sign(checkpoint)
    assert note.startswith(checkpoint.body().decode() + "\n\u2014 " + ORIGIN + " ")
    assert verifier.verify(note) == checkpoint
    assert verifier.verify(note.encode(), origin=ORIGIN) == checkpoint


def test_empty_tree_checkpoint_round_trips(signer: Signer, verifier: Verifier) -> None:
    checkpoint = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert verifier.verify(signer.sign(checkpoint)) == checkpoint


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n42\n", "\n43\n"),
        ("\n42\n", "\n41\n"),
        ("\n42\n", "\n420\n"),
        (base64.b64encode(ROOT).decode(), base64.b64encode(leaf_hash(b"other")).decode()),
        (ORIGIN + "\n", "kiteline.example/other\n"),
        (ORIGIN + "\n", ORIGIN + " \n"),
    ],
    ids=["size+1", "size-1", "size*10", "root", "origin", "origin with space"],
)
def test_edited_checkpoint_is_rejected(verifier: Verifier, note: str, old: str, new: str) -> None:
    edited = note.replace(old, new, 1)
    assert edited != note
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        verifier.verify(edited)


def test_signature_by_another_key_is_rejected(note: str) -> None:
    impostor = Signer.generate(ORIGIN)
    with pytest.raises(CheckpointInvalid, match="not signed by"):
        impostor.verifier().verify(note)
    with pytest.raises(CheckpointInvalid, match="not signed by"):
        Signer.generate("someone.else/log").verifier().verify(note)


def test_checkpoint_signed_only_by_an_unknown_key_is_rejected(verifier: Verifier) -> None:
    forged = Signer.generate("forger.example/log").sign(Checkpoint(ORIGIN, 42, ROOT))
    with pytest.raises(CheckpointInvalid, match="not signed by"):
        verifier.verify(forged)


def test_forged_signature_under_the_right_name_and_key_id_is_rejected(
    signer: Signer, verifier: Verifier
) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    forged_signature = Signer.generate(ORIGIN).sign(checkpoint).rsplit(" ", 1)[1]
    forged_blob = base64.b64decode(forged_signature)
    relabelled = base64.b64encode(signer.key_id + forged_blob[4:]).decode()
    note = checkpoint.body().decode() + f"\n\u2014 {ORIGIN} {relabelled}\n"
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        verifier.verify(note)


def test_unknown_signatures_beside_ours_are_ignored(signer: Signer, verifier: Verifier) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    witness = Signer.generate("witness.example/w1")
    ours = signer.sign(checkpoint).split("\n\n", 1)[1]
    theirs = witness.sign(checkpoint).split("\n\n", 1)[1]
    cosigned = checkpoint.body().decode() + "\n" + theirs + ours
    assert verifier.verify(cosigned) == checkpoint
    assert witness.verifier().verify(cosigned) == checkpoint


def test_a_bad_signature_by_our_key_fails_even_beside_a_good_one(
    signer: Signer, verifier: Verifier
) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    good_line = signer.sign(checkpoint).split("\n\n", 1)[1]
    bad_line = signer.sign(Checkpoint(ORIGIN, 43, ROOT)).split("\n\n", 1)[1]
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        verifier.verify(checkpoint.body().decode() + "\n" + good_line + bad_line)


def test_origin_mismatch_is_rejected(verifier: Verifier, note: str) -> None:
    with pytest.raises(CheckpointInvalid, match="origin"):
        verifier.verify(note, origin="kiteline.example/another-log")


def _malformations(note: str) -> Iterator[tuple[str, str | bytes]]:
    body, signatures = note.split("\n\n", 1)
    line = signatures.rstrip("\n")
    blob = line.rsplit(" ", 1)[1]
    short_blob = base64.b64encode(base64.b64decode(blob)[:-1]).decode()
    yield "no blank line", body + "\n" + signatures
    yield "no final newline", note.rstrip("\n")
    yield "no signature", body + "\n\n"
    yield "ascii hyphen", note.replace("\u2014", "-")
    yield "two spaces", note.replace("\u2014 ", "\u2014  ")
    yield "trailing space", note.rstrip("\n") + " \n"
    yield "empty signature line", note + "\n"
    yield "crlf", note.replace("\n", "\r\n")
    yield "tab", note.replace(" ", "\t", 1)
    yield "nul", note.replace(ORIGIN, ORIGIN + "\x00")
    yield "bad base64", note.replace(blob, blob.replace("=", "") + "!")
    yield "unpadded base64", note.replace(blob, blob.rstrip("="))
    yield "non-canonical base64", note.replace(blob, non_canonical(blob))
    yield "key id only", note.replace(blob, base64.b64encode(b"\x00" * 4).decode())
    yield "signature cut short", note.replace(blob, short_blob)
    yield "not utf-8", note.encode() + b"\xff"
    yield "lone surrogate", note.replace(ORIGIN, ORIGIN + "\udc80")
    yield "too many signatures", note + (line + "\n") * 64
    yield "huge", note + "x" * 70_000


MALFORMED_NOTES = list(_malformations(GO_SIGNED_CHECKPOINT))


@pytest.mark.parametrize(
    "malformed", [note for _, note in MALFORMED_NOTES], ids=[name for name, _ in MALFORMED_NOTES]
)
def test_malformed_notes_are_rejected(malformed: str | bytes) -> None:
    with pytest.raises(CheckpointInvalid):
        Verifier.from_vkey(GO_VKEY).verify(malformed)


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n42\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\nextension line\n",
        f"{ORIGIN}\n042\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n+42\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n4_2\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n\u0664\u0662\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n{2**64}\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
        f"{ORIGIN}\n42\n{ROOT.hex()}\n",
        f"{ORIGIN}\n42\n{non_canonical(base64.b64encode(ROOT).decode())}\n",
        f"\n42\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n42\n\n{base64.b64encode(ROOT).decode()}\n",
    ],
    ids=[
        "two lines",
        "extension line",
        "leading zero",
        "plus sign",
        "underscore",
        "arabic digits",
        "negative",
        "over 64 bits",
        "31-byte root",
        "unpadded root",
        "hex root",
        "non-canonical root",
        "empty origin",
        "blank line in body",
    ],
)
def test_properly_signed_malformed_checkpoints_are_rejected(
    signer: Signer, verifier: Verifier, body: str
) -> None:
    with pytest.raises(CheckpointInvalid):
        verifier.verify(signer.sign_text(body))


@pytest.mark.parametrize(
    ("origin", "tree_size", "root_hash"),
    [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("a\tb", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, 2**64, ROOT),
        (ORIGIN, 1, ROOT[:31]),
    ],
)
def test_checkpoint_refuses_values_it_cannot_encode(
    origin: str, tree_size: int, root_hash: bytes
) -> None:
    with pytest.raises(ValueError):
        Checkpoint(origin, tree_size, root_hash)


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumanN+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(KeyInvalid):
        Verifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        GO_VKEY,
        GO_SKEY.replace("PRIVATE+KEY+", "PRIVATE+"),
        GO_SKEY.replace("c74f20a3", "c74f20a4"),
        GO_SKEY.replace("+AYEK", "+AoEK"),
        GO_SKEY[:-4],
    ],
    ids=["verifier key", "bad prefix", "wrong key id", "wrong type", "truncated"],
)
def test_malformed_private_keys_are_rejected(skey: str) -> None:
    with pytest.raises(KeyInvalid):
        Signer.from_skey(skey)


@pytest.mark.parametrize(
    "name", ["", "has space", "has+plus", "tab\there", "nl\nhere", "nb\u00a0sp"]
)
def test_bad_key_names_are_rejected(name: str) -> None:
    with pytest.raises(KeyInvalid):
        Signer.generate(name)


def test_key_errors_are_audit_errors() -> None:
    assert issubclass(KeyInvalid, AuditError)
    assert issubclass(CheckpointInvalid, AuditError)


def test_signer_repr_does_not_show_the_private_key() -> None:
    signer = Signer.from_skey(GO_SKEY)
    assert "AYEK" not in repr(signer)
    assert "c74f20a3" in repr(signer)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_private_key_file_is_written_with_mode_0600(tmp_path: Path, umask: int) -> None:
    signer, verifier = generate_key_pair(ORIGIN)
    key_path = tmp_path / "checkpoint.key"
    previous = os.umask(umask)
    try:
        save_signer(signer, key_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    loaded = load_signer(key_path)
    assert loaded.skey() == signer.skey()
    assert verifier.verify(loaded.sign(Checkpoint(ORIGIN, 1, ROOT))).tree_size == 1


def test_key_files_are_not_overwritten_unless_asked(tmp_path: Path) -> None:
    first, second = Signer.generate(ORIGIN), Signer.generate(ORIGIN)
    key_path = tmp_path / "checkpoint.key"
    save_signer(first, key_path)
    with pytest.raises(FileExistsError):
        save_signer(second, key_path)
    assert load_signer(key_path).skey() == first.skey()
    save_signer(second, key_path, overwrite=True)
    assert load_signer(key_path).skey() == second.skey()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint.key"]


def test_private_key_file_refuses_to_follow_a_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "checkpoint.key").symlink_to(elsewhere)
    with pytest.raises(FileExistsError):
        save_signer(Signer.generate(ORIGIN), tmp_path / "checkpoint.key")
    assert not elsewhere.exists()


def test_verifier_key_file_round_trips(tmp_path: Path) -> None:
    verifier = Verifier.from_vkey(GO_VKEY)
    path = tmp_path / "checkpoint.vkey"
    save_verifier(verifier, path)
    assert path.read_text() == GO_VKEY + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert load_verifier(path).vkey() == GO_VKEY


origins = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
)


@given(
    origin=origins,
    tree_size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
)
def test_any_checkpoint_round_trips(origin: str, tree_size: int, root_hash: bytes) -> None:
    checkpoint = Checkpoint(origin, tree_size, root_hash)
    signer = Signer.from_skey(GO_SKEY)
    assert signer.verifier().verify(signer.sign(checkpoint)) == checkpoint


@given(data=st.data())
def test_any_single_character_edit_is_rejected(data: st.DataObject) -> None:
    note = GO_SIGNED_CHECKPOINT
    position = data.draw(st.integers(0, len(note) - 1), label="position")
    replacement = data.draw(st.characters().filter(lambda c: c != note[position]))
    edited = note[:position] + replacement + note[position + 1 :]
    with pytest.raises(CheckpointInvalid):
        Verifier.from_vkey(GO_VKEY).verify(edited)


@given(data=st.data())
def test_any_single_character_deletion_is_rejected(data: st.DataObject) -> None:
    note = GO_SIGNED_CHECKPOINT
    position = data.draw(st.integers(0, len(note) - 1), label="position")
    with pytest.raises(CheckpointInvalid):
        Verifier.from_vkey(GO_VKEY).verify(note[:position] + note[position + 1 :])
