"""Parity: the line index answers what casbin's enforcer answers under model.conf."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.casbin_engine import CasbinEngine, PolicyLine
from policies.casbin_index import MODEL_PATH, tokens

SUBJECTS = ["user:mei", "org:surgibot", "user:lin", "user:a b", "org:x,y"]
MODULES = ["imaging", "crm", "*"]
DATASETS = ["patients", "studies", "*"]

LINES = st.lists(
    st.builds(
        lambda *values: PolicyLine("p", values),
        st.sampled_from(SUBJECTS),
        st.sampled_from(MODULES),
        st.sampled_from(DATASETS),
        st.sampled_from(["read", "read", "write"]),
        st.sampled_from(["allow", "allow", "deny", "audit"]),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    lines=LINES,
    subjects=st.lists(st.sampled_from(SUBJECTS), max_size=3),
    module=st.sampled_from(MODULES[:2]),
    dataset=st.sampled_from(DATASETS[:2]),
    action=st.sampled_from(["read", "write"]),
)
def test_the_index_agrees_with_casbin(
    lines: list[PolicyLine], subjects: list[str], module: str, dataset: str, action: str
) -> None:
    indexed = CasbinEngine(lines)
    enforcer = CasbinEngine(lines, index=False)
    assert enforcer._index is None
    # A value casbin's line reader would split is left to casbin.
    split = any("," in v for line in lines for v in line.values)
    assert (indexed._index is None) is split
    request = dict(subjects=subjects, module=module, dataset=dataset, action=action)
    allowed, named = indexed.check(**request)
    expected, casbin_named = enforcer.check(**request)
    assert allowed is expected
    # Both name a line per subject with a match, and a deny whenever casbin does;
    # which of several matching allows casbin names depends on its set order.
    assert len(named) == len(casbin_named)
    texts = {", ".join(line.values) for line in lines}
    for mine, theirs in zip(named, casbin_named, strict=True):
        assert mine in texts and mine.split(", ")[0] == theirs.split(", ")[0]
        assert mine.endswith(", deny") is theirs.endswith(", deny")


def test_another_model_goes_through_casbin(tmp_path: Path) -> None:
    model = tmp_path / "model.conf"
    # Allow overrides deny here: not the model the index restates.
    model.write_text(
        MODEL_PATH.read_text().replace(
            "some(where (p.eft == allow)) && !some(where (p.eft == deny))",
            "some(where (p.eft == allow))",
        )
    )
    lines = [
        PolicyLine("p", ("user:mei", "imaging", "*", "read", "allow")),
        PolicyLine("p", ("user:mei", "*", "*", "read", "deny")),
    ]
    engine = CasbinEngine(lines, model_path=model)
    assert engine._index is None
    request = dict(subjects=["user:mei"], module="imaging", dataset="patients", action="read")
    assert engine.check(**request)[0] is True
    assert CasbinEngine(lines).check(**request)[0] is False


@settings(max_examples=200, deadline=None)
@given(
    before=LINES,
    after=LINES,
    dropped=st.sets(st.sampled_from(SUBJECTS), max_size=2),
    subjects=st.lists(st.sampled_from(SUBJECTS), max_size=3),
    module=st.sampled_from(MODULES[:2]),
    dataset=st.sampled_from(DATASETS[:2]),
)
def test_an_engine_with_subjects_replaced_answers_as_one_built_whole(
    before: list[PolicyLine],
    after: list[PolicyLine],
    dropped: set[str],
    subjects: list[str],
    module: str,
    dataset: str,
) -> None:
    # Every subject ``after`` names takes its lines from there, the ``dropped`` ones
    # lose theirs, and the rest keep theirs.
    named = {line.values[0] for line in after} | dropped
    replaced_by = {s: [line for line in after if line.values[0] == s] for s in named}
    whole = CasbinEngine([line for line in before if line.values[0] not in named] + after)
    original = CasbinEngine(before)
    replaced = original.replaced(replaced_by)
    if replaced is None:
        # Refused only for an engine under casbin itself (a line the index cannot
        # hold), or a line casbin's reader would read as another subject's.
        read = [tokens(line.ptype, line.values) for line in after]
        assert original._index is None or any(
            r is None or r[0] != line.values[0] for r, line in zip(read, after, strict=True)
        )
        return
    check = dict(subjects=subjects, module=module, dataset=dataset, action="read")
    assert replaced.check(**check) == whole.check(**check)
    # The engine replaced from is left as it was, for readers still on it.
    assert original.check(**check) == CasbinEngine(before).check(**check)


def test_an_engine_under_casbin_itself_is_not_replaced_in_place(tmp_path: Path) -> None:
    model = tmp_path / "model.conf"
    model.write_text(MODEL_PATH.read_text() + "\n")
    engine = CasbinEngine(
        [PolicyLine("p", ("user:mei", "imaging", "*", "read", "allow"))], model_path=model
    )
    assert engine.replaced({"user:mei": []}) is None
