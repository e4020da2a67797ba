"""The packaged casbin model (model.conf) as a lookup over lines indexed by subject.

casbin's enforcer compiles and evaluates its matcher expression for every line of a
subject on every check, which makes the coarse check cost more than the house rules
themselves. The packaged model is one equality per field with ``*`` as a wildcard on
module and dataset, and "some allow and no deny": :class:`LineIndex` answers exactly
that. Like ``enforce_ex`` it names a matching deny line when there is one, else a
matching line; casbin's fast enforcer keeps a subject's lines in a set, so which of
several matching lines it names varies from process to process, and the index names
the first deny or the last match in line order. It is used only for the model file
shipped here; a deployment's own model goes through casbin. A parity test runs both
over generated lines and requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from casbin.persist.adapter import _extract_tokens

MODEL_PATH = Path(__file__).with_name("model.conf")
# Characters casbin's line reader treats as structure (nesting, separators).
_STRUCTURE = frozenset(",[]()")

Line = tuple[str, ...]


def packaged_model(path: Path) -> bool:
    """Whether ``path`` holds the very model this index restates."""
    try:
        return path.read_bytes() == MODEL_PATH.read_bytes()
    except OSError:
        return False


def tokens(ptype: str, values: tuple[str, ...]) -> Line | None:
    """The values as casbin reads them back from the line's text (None: not a ``p`` line
    of five values, which casbin would refuse or ignore)."""
    if ptype != "p" or len(values) != 5:
        return None
    if any(v != v.strip() or not _STRUCTURE.isdisjoint(v) for v in values):
        read = _extract_tokens(", ".join((ptype, *values)))
        if read is None or len(read) != 6:
            return None
        return tuple(read[1:])
    return values


class LineIndex:
    """``p`` lines by subject, in the order casbin holds them."""

    def __init__(self, lines: Iterable[Line]) -> None:
        self._by_subject: dict[str, list[Line]] = {}
        for line in lines:
            self._by_subject.setdefault(line[0], []).append(line)

    def replaced(self, lines: Mapping[str, Iterable[Line]]) -> LineIndex:
        """A new index whose subjects named in ``lines`` hold those lines instead (none:
        the subject is dropped); this one is left as it is, for readers still on it."""
        index = LineIndex(())
        index._by_subject = dict(self._by_subject)
        for subject, held in lines.items():
            kept = list(held)
            if kept:
                index._by_subject[subject] = kept
            else:
                index._by_subject.pop(subject, None)
        return index

    def check_one(self, subject: str, module: str, dataset: str, action: str) -> tuple[bool, Line]:
        """casbin's ``enforce_ex`` under model.conf: the verdict and the explaining line."""
        allow = deny = False
        explain: Line = ()
        for line in self._by_subject.get(subject, ()):
            _, dom, obj, act, eft = line
            if (dom == "*" or dom == module) and (obj == "*" or obj == dataset) and act == action:
                explain = line
                if eft == "deny":
                    deny = True
                    break
                allow = allow or eft == "allow"
        return allow and not deny, explain
