"""Errors raised by the policy layer."""


class PolicyError(Exception):
    """Root of every policy-layer error."""


class PolicyUnavailable(PolicyError):
    """An engine could not answer (down, timed out, failed to evaluate): fail closed."""


class PolicyCompileError(PolicyError):
    """A policy file does not compile."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.message = message
