"""The default profile tables: profile order, ceilings by principal kind, and what each
profile does to each column classification (DESIGN.md, "Column classifications")."""

from __future__ import annotations

from typing import Literal

Profile = Literal["raw", "pseudonymized", "anonymized", "aggregate"]
Treatment = Literal[
    "value",  # returned unchanged
    "pseudonym",  # keyed, per-recipient pseudonym
    "mask",  # partially masked (138****5678)
    "generalize",  # coarsened (year, band, prefix)
    "scrub",  # free text with PII replaced by placeholders
    "drop",  # never returned
    "count_only",  # aggregate profile: may be counted, not grouped or shown
    "group",  # aggregate profile: may be grouped by (after generalization)
    "measure",  # aggregate profile: may be summed/averaged, with noise
]

# Most revealing first.
PROFILE_ORDER: tuple[Profile, ...] = ("raw", "pseudonymized", "anonymized", "aggregate")

# The most revealing profile each kind of principal may ever hold. Officers and admins
# govern; they do not consume data (separation of duties).
KIND_CEILING: dict[str, Profile | None] = {
    "employee": "raw",
    "service": "pseudonymized",
    "alumni": "anonymized",
    "partner": "anonymized",
    "officer": None,
    "admin": None,
}

TREATMENTS: dict[str, dict[Profile, Treatment]] = {
    "identifier": {
        "raw": "value",
        "pseudonymized": "pseudonym",
        "anonymized": "pseudonym",
        "aggregate": "count_only",
    },
    "direct_identifier": {
        "raw": "value",
        "pseudonymized": "mask",
        "anonymized": "drop",
        "aggregate": "drop",
    },
    "quasi_identifier": {
        "raw": "value",
        "pseudonymized": "value",
        "anonymized": "generalize",
        "aggregate": "group",
    },
    "sensitive": {
        "raw": "value",
        "pseudonymized": "value",
        "anonymized": "value",
        "aggregate": "measure",
    },
    "free_text": {
        "raw": "value",
        "pseudonymized": "scrub",
        "anonymized": "scrub",
        "aggregate": "drop",
    },
    "internal": {
        "raw": "value",
        "pseudonymized": "drop",
        "anonymized": "drop",
        "aggregate": "drop",
    },
    "public": {
        "raw": "value",
        "pseudonymized": "value",
        "anonymized": "value",
        "aggregate": "group",
    },
}


def rank(profile: Profile) -> int:
    """0 for raw (most revealing) up to 3 for aggregate."""
    return PROFILE_ORDER.index(profile)


def is_at_most(profile: Profile, ceiling: Profile) -> bool:
    """True when ``profile`` reveals no more than ``ceiling``."""
    return rank(profile) >= rank(ceiling)


def cap(profile: Profile, ceiling: Profile) -> Profile:
    """The less revealing of the two."""
    return profile if is_at_most(profile, ceiling) else ceiling


def treatment(classification: str, profile: Profile) -> Treatment:
    # An unknown classification is treated as internal: never shown outside raw.
    return TREATMENTS.get(classification, TREATMENTS["internal"])[profile]
