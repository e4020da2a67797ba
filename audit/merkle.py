"""RFC 6962 Merkle tree hashing, proofs and proof verification.

The one implementation lives in ``kiteline_proofs.merkle``, shared with the partners'
client so that a receipt is checked offline by the very code the server trusts.
"""

from kiteline_proofs.merkle import *  # noqa: F403
from kiteline_proofs.merkle import __all__  # noqa: F401
