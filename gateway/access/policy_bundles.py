"""Every policy version the gateway loaded, kept by content address in the state database.

Audit events record the version of the policy that decided them (a digest of the
policy files, see ``policy_files``). The files of each version are kept here when the
gateway loads or reloads them, so that a past decision can be replayed under the very
policy that made it, after the directory on disk has moved on. A bundle is checked
against its address when it is read back: a stored bundle whose files no longer hash
to its version is refused.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.access.policy_files import policy_files, version_of
from gateway.access.principals import now
from gateway.errors import NotFound, Unavailable
from gateway.state.models import PolicyBundle
from policies import CasbinEngine, PolicyLine, RegoEngine

log = logging.getLogger(__name__)

# Replays are rare (an officer's question); a few compiled versions are plenty.
CACHED_ENGINES = 4


def keep(engine: Engine, directory: Path) -> str:
    """Store the files of ``directory`` under their version (once); returns the version."""
    files = policy_files(directory)
    version = version_of(files)
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as conn:
        conn.execute(
            insert(PolicyBundle)
            .values(version=version, files=files, created_at=now())
            .on_conflict_do_nothing()
        )
    return version


def files_of(engine: Engine, version: str) -> dict[str, str]:
    with engine.connect() as conn:
        files = conn.scalar(select(PolicyBundle.files).where(PolicyBundle.version == version))
    if files is None:
        raise NotFound(
            f"policy version {version!r} is not kept in the state database; it was loaded "
            "before policy bundles were kept, or by another deployment"
        )
    if version_of(files) != version:
        raise Unavailable(f"the stored policy bundle {version!r} does not match its digest")
    return dict(files)


class ReplayEngines:
    """The engines of past policy versions, compiled from their kept bundles."""

    def __init__(self, engine: Engine, *, timeout_s: float) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        # A version's engine and the folder its files were written to (removed with it).
        self._cache: OrderedDict[str, tuple[RegoEngine, tempfile.TemporaryDirectory[str]]] = (
            OrderedDict()
        )

    def rego(self, version: str) -> RegoEngine:
        return self._load(version)[0]

    def casbin(self, version: str, lines: list[PolicyLine]) -> CasbinEngine:
        model = Path(self._load(version)[1].name) / "model.conf"
        return CasbinEngine(lines, model_path=model) if model.exists() else CasbinEngine(lines)

    def _load(self, version: str) -> tuple[RegoEngine, tempfile.TemporaryDirectory[str]]:
        with self._lock:
            if version in self._cache:
                self._cache.move_to_end(version)
                return self._cache[version]
            files = files_of(self._engine, version)
            holder = tempfile.TemporaryDirectory(prefix=f"kiteline-policy-{version}-")
            folder = Path(holder.name)
            for name, text in files.items():
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            loaded = (RegoEngine.from_directory(folder, timeout_s=self._timeout_s), holder)
            self._cache[version] = loaded
            if len(self._cache) > CACHED_ENGINES:
                _, (old, old_folder) = self._cache.popitem(last=False)
                old.close()
                old_folder.cleanup()
            log.info("policy version %s loaded for replay", version)
            return loaded
