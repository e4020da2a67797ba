"""The partners' client for a kiteline gateway.

``Client.from_profile().query("patients", purpose=...)`` returns a ``pyarrow.Table``
of the whole extract your grant allows; see docs/partner-client.md for the guide,
whose examples the test suite runs against a real gateway.
"""

from kiteline_client.client import (
    AggregateResult,
    Budget,
    Client,
    ReadInfo,
    query_body,
    read_info,
    to_polars,
)
from kiteline_client.errors import (
    AccessDenied,
    BudgetExhausted,
    Conflict,
    InvalidRequest,
    KitelineError,
    NotAcceptable,
    NotFound,
    ProblemError,
    TransportFailed,
    Unauthenticated,
    Unavailable,
)
from kiteline_client.profiles import Profile, ProfileError, load_profile, save_profile
from kiteline_client.receipts import Receipt, ReceiptInvalid, verify_receipt
from kiteline_client.retries import NO_RETRY, Retry

__all__ = [
    "NO_RETRY",
    "AccessDenied",
    "AggregateResult",
    "Budget",
    "BudgetExhausted",
    "Client",
    "Conflict",
    "InvalidRequest",
    "KitelineError",
    "NotAcceptable",
    "NotFound",
    "ProblemError",
    "Profile",
    "ProfileError",
    "ReadInfo",
    "Receipt",
    "ReceiptInvalid",
    "Retry",
    "TransportFailed",
    "Unauthenticated",
    "Unavailable",
    "load_profile",
    "query_body",
    "read_info",
    "save_profile",
    "to_polars",
    "verify_receipt",
]
