"""Signed checkpoints (C2SP tlog-checkpoint in a signed note, Ed25519).

The one implementation lives in ``kiteline_proofs.checkpoints``, shared with the
partners' client, which verifies checkpoints against a pinned public key.
"""

from kiteline_proofs.checkpoints import *  # noqa: F403
from kiteline_proofs.checkpoints import __all__  # noqa: F401
