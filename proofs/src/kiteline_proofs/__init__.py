"""RFC 6962 Merkle proofs and signed checkpoints of the kiteline audit log.

One implementation, shared by the server (``audit``, which builds and serves proofs)
and the partners' client (``kiteline_client``, which checks receipts offline). It
imports only the standard library and ``cryptography``.
"""
