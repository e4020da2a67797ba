"""kiteline's gateway: the HTTP API, the CLI and the governed-read service."""

# rego-cpp (regopy) aborts the process in its time builtins when numpy or pyarrow were
# loaded before it; loading it first keeps every later import order safe.
import regopy  # noqa: F401
