"""The production option: the same Rego, evaluated by an external OPA server.

Talks to OPA's REST API through ``opa-python-client``: ``PUT /v1/policies/{id}`` to load
modules and ``POST /v1/data/kiteline/access/decision`` with ``{"input": ...}`` to
decide. Every failure to get a well-formed decision (connection refused, timeout,
non-200 answer, no ``result``) raises :class:`PolicyUnavailable`, so the gateway fails
closed.

The client retries nothing (a retry would stretch the time budget) and each thread
uses its own client, since a ``requests`` session is not documented as thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient
from opa_client.errors import PolicyNotFoundError, RegoParseError

from policies.bundle import (
    DECISION_PACKAGE,
    DECISION_RULE,
    PolicyFile,
    PolicySet,
    ensure_decision,
    ensure_json_input,
    load_policy_set,
    policy_version,
    with_utc_offsets,
)
from policies.errors import PolicyCompileError, PolicyUnavailable

log = logging.getLogger(__name__)

__all__ = ["POLICY_ID_PREFIX", "OpaEngine"]

# Policy ids on the server are "kiteline/<file name>", so kiteline's modules can be
# told apart from anything else loaded there and versioned on their own.
POLICY_ID_PREFIX = "kiteline/"


class OpaEngine:
    """Decisions from an OPA server at ``url`` (e.g. ``http://opa:8181``)."""

    def __init__(self, url: str, *, timeout_s: float = 0.5, token: str | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = parts.scheme == "https"
        # OPA may sit behind a proxy under a path prefix; opa-python-client only knows
        # host and port, so its root URL is set here.
        self._root_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/v1"
        self._token = token
        self._local = threading.local()
        self._clients: list[OpaClient] = []
        self._clients_lock = threading.Lock()
        # Unknown until policies are pushed or read back from the server.
        self.version: str = ""

    def _client(self) -> OpaClient:
        client: OpaClient | None = getattr(self._local, "client", None)
        if client is None:
            client = OpaClient(
                host=self._host,
                port=self._port,
                ssl=self._ssl,
                token=self._token,
                retries=0,
                timeout=self.timeout_s,
            )
            client.root_url = self._root_url
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def push_policies(self, path: Path) -> None:
        """PUT every ``*.rego`` module under ``path`` (tests excluded) to the server.

        OPA compiles each upload against the modules it already holds, so a module
        calling a function from one not yet uploaded is refused; refused modules are
        retried after the others until a round makes no progress.
        """
        policy_set = load_policy_set(Path(path))
        pending = list(policy_set.modules)
        while pending:
            refused: list[tuple[PolicyFile, RegoParseError]] = []
            for module in pending:
                try:
                    self._client().update_policy_from_string(
                        module.text, POLICY_ID_PREFIX + module.name, rego_compat=False
                    )
                except RegoParseError as exc:
                    if not exc.errors:  # refused for another reason: auth, a proxy, ...
                        raise PolicyUnavailable(
                            f"OPA at {self.url} refused {module.name}: {exc}"
                        ) from exc
                    refused.append((module, exc))
                except (requests.RequestException, ValueError) as exc:
                    raise PolicyUnavailable(
                        f"OPA at {self.url} did not take the policies: {exc}"
                    ) from exc
            if len(refused) == len(pending):
                first, error = refused[0]
                raise _compile_error(policy_set, first.name, error) from error
            pending = [module for module, _ in refused]
        self.version = policy_set.version
        log.info(
            "pushed %d policy modules to OPA, version %s", len(policy_set.modules), self.version
        )

    def fetch_version(self) -> str:
        """The version of the kiteline modules the server holds now (and remember it)."""
        client = self._client()
        try:
            ids = [i for i in client.get_policies_list() if str(i).startswith(POLICY_ID_PREFIX)]
            files = [
                (i.removeprefix(POLICY_ID_PREFIX), client.get_policy(i)["result"]["raw"])
                for i in ids
            ]
        except (
            requests.RequestException,
            ValueError,
            KeyError,
            TypeError,
            PolicyNotFoundError,
        ) as exc:
            raise PolicyUnavailable(f"OPA at {self.url} did not list its policies: {exc}") from exc
        if not files:
            raise PolicyUnavailable(f"OPA at {self.url} holds no kiteline policies")
        self.version = policy_version(files)
        return self.version

    def evaluate(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """The decision document for one request, within ``timeout_s``."""
        ensure_json_input(input)
        started = time.monotonic()
        try:
            answer = self._client().query_rule(
                input_data=with_utc_offsets(input),
                package_path=DECISION_PACKAGE,
                rule_name=DECISION_RULE,
            )
        except requests.Timeout as exc:
            raise PolicyUnavailable(
                f"OPA at {self.url} did not answer within {self.timeout_s:g} s"
            ) from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "an error"
            raise PolicyUnavailable(f"OPA at {self.url} answered {status}") from exc
        except (requests.RequestException, ValueError) as exc:
            raise PolicyUnavailable(f"OPA at {self.url} is unreachable: {exc}") from exc
        # requests bounds connect and each read separately; a slow trickle of bytes can
        # add up past the budget, and a late answer is treated like no answer.
        if time.monotonic() - started > self.timeout_s:
            raise PolicyUnavailable(f"OPA at {self.url} answered after {self.timeout_s:g} s")
        if not isinstance(answer, dict) or "result" not in answer:
            raise PolicyUnavailable(
                f"OPA at {self.url} has no kiteline decision (are the policies loaded?)"
            )
        return ensure_decision(answer["result"])

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close_connection()

    def __enter__(self) -> OpaEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _compile_error(policy_set: PolicySet, name: str, exc: RegoParseError) -> PolicyCompileError:
    """OPA reports ``errors: [{message, location: {file, row}}]``; name the first."""
    policy_file = policy_set.file_named(name)
    path = str(policy_file.path) if policy_file else name
    for error in exc.errors:
        if isinstance(error, dict):
            location = error.get("location") or {}
            row = location.get("row") if isinstance(location, dict) else None
            return PolicyCompileError(
                path, row if isinstance(row, int) else None, str(error.get("message", exc.message))
            )
    return PolicyCompileError(path, None, str(exc.message))
