"""The policies' public face: decisions, profiles and the casbin and Rego engines.

Store drivers that pull in heavy libraries load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from policies.casbin_engine import CasbinEngine, PolicyLine, run_cases
from policies.decision import Decision, Obligations
from policies.errors import PolicyCompileError, PolicyError
from policies.fast_path import FastPath
from policies.profiles import (
    KIND_CEILING,
    PROFILE_ORDER,
    Profile,
    Treatment,
    cap,
    is_at_most,
    treatment,
)
from policies.rego import RegoEngine

if TYPE_CHECKING:
    from policies.opa import OpaEngine

_LAZY = {"OpaEngine": "policies.opa"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CasbinEngine",
    "Decision",
    "FastPath",
    "KIND_CEILING",
    "Obligations",
    "OpaEngine",
    "PROFILE_ORDER",
    "PolicyCompileError",
    "PolicyError",
    "PolicyLine",
    "Profile",
    "RegoEngine",
    "Treatment",
    "cap",
    "is_at_most",
    "run_cases",
    "treatment",
]
