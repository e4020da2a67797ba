"""The cross-read pseudonym cache: one scope per (recipient, domain, key version), so
no read is ever served another recipient's or another key version's pseudonyms, and a
bound on the entries it keeps."""

from __future__ import annotations

import pyarrow as pa

from gateway.access.keyring import Keyring
from gateway.config import Dataset
from gateway.read.views import build_view
from gateway.transforms.profile import BatchTransformer
from gateway.transforms.pseudonym_cache import PseudonymCache
from gateway.transforms.pseudonyms import prefix_for, pseudonym_of, pseudonymize

KEYRING = Keyring(bytes(range(32)))
SCHEMA = pa.schema([("patient_id", pa.string()), ("age", pa.int64())])
DATASET = Dataset.model_validate(
    {
        "module": "m",
        "store": "s",
        "location": "t.parquet",
        "columns": {"patient_id": {"class": "identifier", "domain": "patient"}, "age": "public"},
    }
)
IDS = [f"P{i:04d}" for i in range(50)]


def read(cache: PseudonymCache, recipient: str, version: int = 1) -> list[str]:
    """The patient_id column as one read by ``recipient`` under ``version`` returns it."""
    view = build_view("t", DATASET, SCHEMA, "pseudonymized")
    transformer = BatchTransformer(
        view,
        view.returned,
        keyring=KEYRING,
        recipient=recipient,
        key_version=version,
        pseudonym_cache=cache,
    )
    columns = [pa.array(IDS), pa.array(range(50), pa.int64())]
    batch = pa.RecordBatch.from_arrays(columns, schema=SCHEMA)
    return transformer(batch).column(0).to_pylist()


def expected(recipient: str, version: int = 1) -> list[str]:
    key = KEYRING.pseudonym_key(recipient, "patient", version)
    prefix = prefix_for(version, KEYRING.recipient_tag(recipient, version))
    return [pseudonym_of(v, key=key, prefix=prefix) for v in IDS]


def test_a_second_read_is_served_from_the_cache_with_the_same_pseudonyms():
    cache = PseudonymCache(1000)
    first = read(cache, "org:a")
    assert len(cache) == len(IDS)
    assert read(cache, "org:a") == first == expected("org:a")
    assert len(cache) == len(IDS)


def test_recipients_never_share_cached_pseudonyms():
    cache = PseudonymCache(1000)
    a = read(cache, "org:a")
    b = read(cache, "org:b")
    assert a == expected("org:a")
    assert b == expected("org:b")
    assert not set(a) & set(b)
    assert len(cache) == 2 * len(IDS)  # one table each
    assert read(cache, "org:a") == a


def test_a_key_rotation_misses_the_cache():
    cache = PseudonymCache(1000)
    v1 = read(cache, "org:a", version=1)
    v2 = read(cache, "org:a", version=2)
    assert v2 == expected("org:a", version=2)
    assert not set(v1) & set(v2)
    assert all(p.startswith("p2_") for p in v2)


def test_the_bound_evicts_the_least_recently_used_scope():
    cache = PseudonymCache(120)
    read(cache, "org:a")
    read(cache, "org:b")
    read(cache, "org:a")  # a is now the most recently used
    read(cache, "org:c")  # room for c: b goes
    assert len(cache) <= 120
    held = {scope[0] for scope in cache._tables}
    assert held == {"org:a", "org:c"}
    assert read(cache, "org:b") == expected("org:b")
    assert len(cache) <= 120


def test_a_scope_larger_than_the_bound_is_correct_and_stays_bounded():
    cache = PseudonymCache(10)
    assert read(cache, "org:a") == expected("org:a")
    assert read(cache, "org:a") == expected("org:a")
    assert len(cache) == 0


def test_an_evicted_table_stops_growing():
    cache = PseudonymCache(100)
    table = cache.table(recipient="org:a", domain="d", version=1)
    cache.clear()
    key = KEYRING.pseudonym_key("org:a", "d", 1)
    pseudonymize(pa.array(IDS), key=key, prefix="p1_x_", table=table)
    assert len(table) == 0


def test_a_disabled_cache_keeps_nothing_and_still_pseudonymizes():
    cache = PseudonymCache(0)
    assert read(cache, "org:a") == expected("org:a")
    assert len(cache) == 0
