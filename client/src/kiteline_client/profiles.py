"""Profile files: where a gateway is and how to find the token for it.

A profile is a small JSON file, written with mode 0600::

    {"url": "https://kiteline.example.org", "token": "env:KITELINE_TOKEN"}

``token`` is a reference (``env:NAME`` or ``file:PATH``) or the token itself. A
profile that holds a token and that others may read is refused, as ssh refuses a
private key that is not private.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from kiteline_client.errors import KitelineError

PROFILE_ENV = "KITELINE_PROFILE"


class ProfileError(KitelineError):
    """A profile file is missing, malformed or readable by others."""


def default_path() -> Path:
    """``$KITELINE_PROFILE``, else ``~/.config/kiteline/profile.json``."""
    named = os.environ.get(PROFILE_ENV)
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kiteline" / "profile.json"


@dataclass(frozen=True)
class Profile:
    url: str
    token: str  # a reference (env:NAME, file:PATH) or the token itself

    def resolve_token(self) -> str:
        if self.token.startswith("env:"):
            name = self.token[4:]
            value = os.environ.get(name)
            if not value:
                raise ProfileError(f"the profile's token is in ${name}, which is not set")
            return value
        if self.token.startswith("file:"):
            path = Path(self.token[5:]).expanduser()
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ProfileError(f"cannot read the profile's token file {path}: {exc}") from exc
        return self.token

    @property
    def holds_secret(self) -> bool:
        return not self.token.startswith(("env:", "file:"))


def load_profile(path: str | os.PathLike[str] | None = None) -> Profile:
    where = Path(path) if path is not None else default_path()
    try:
        mode = where.stat().st_mode
        data = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"no profile at {where}; run `kiteline login` first") from None
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read the profile {where}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise ProfileError(f"the profile {where} has no url")
    if not isinstance(data.get("token"), str) or not data["token"]:
        raise ProfileError(f"the profile {where} has no token")
    profile = Profile(url=data["url"], token=data["token"])
    if profile.holds_secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ProfileError(
            f"the profile {where} holds a token and others may read it; chmod 600 it"
        )
    return profile


def save_profile(profile: Profile, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``profile`` with mode 0600 (created so, never briefly readable by others)."""
    where = Path(path) if path is not None else default_path()
    where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps({"url": profile.url, "token": profile.token}, indent=2) + "\n"
    fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return where


__all__ = ["PROFILE_ENV", "Profile", "ProfileError", "default_path", "load_profile", "save_profile"]
