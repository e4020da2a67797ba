"""The answer digest: the same SHA-256 whether chunks are hashed inline or on a thread."""

from __future__ import annotations

import hashlib
import os
import threading

from gateway.digest import AnswerDigest


def test_a_large_answer_hashes_on_a_thread_in_order():
    chunks = [os.urandom(n) for n in (10, 700, 5000, 3, 64_000, 1, 250_000)]
    digest = AnswerDigest(inline_bytes=6000)
    for chunk in chunks:
        digest.update(chunk)
    assert digest._thread is not None  # past the inline bytes: hashed beside the producer
    assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert digest._thread is None


def test_a_small_answer_hashes_inline():
    digest = AnswerDigest()
    digest.update(b"abc")
    assert digest._thread is None
    assert digest.hexdigest() == hashlib.sha256(b"abc").hexdigest()


def test_closing_an_abandoned_digest_stops_its_thread():
    before = threading.active_count()
    digest = AnswerDigest(inline_bytes=0)
    digest.update(b"x" * 10)
    digest.close()
    assert threading.active_count() == before
