"""The answer digest: the same SHA-256 whether chunks are hashed inline or on a thread."""

from __future__ import annotations

import hashlib
import os

from gateway.read.digest import AnswerDigest


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
    digest = AnswerDigest(inline_bytes=0)
    digest.update(b"x" * 10)
    thread = digest._thread
    assert thread is not None and thread.is_alive()
    digest.close()
    # Its own thread, not the process's thread count: other tests' pools come and go.
    assert not thread.is_alive()
    assert digest._thread is None
