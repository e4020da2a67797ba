"""What every section of ``kiteline.yaml`` shares: strict models and the vocabularies
of profiles, column classes and masks."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

Profile = Literal["raw", "pseudonymized", "anonymized", "aggregate"]
Classification = Literal[
    "identifier",
    "direct_identifier",
    "quasi_identifier",
    "sensitive",
    "free_text",
    "internal",
    "public",
]
MaskKind = Literal["phone", "email", "national_id", "name", "generic"]

SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")
NAME = r"^[a-z][a-z0-9_]{0,62}$"


class Strict(BaseModel):
    """A section: unknown keys are errors, and a loaded configuration never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def ensure_reference(value: str | None, message: str) -> str | None:
    """``value`` when it is a secret reference (``env:NAME`` or ``file:PATH``) or unset."""
    if value is not None and not SECRET_REF.match(value):
        raise ValueError(message)
    return value
