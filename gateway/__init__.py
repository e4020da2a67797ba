"""kiteline's gateway: the HTTP API, the CLI and the governed-read service."""
