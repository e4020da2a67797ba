"""A grant change is enforced by the very next read, over HTTP against a real ``kiteline serve``.

The serving process learns of the change from the state database: a revocation made
through its own API, and grants revoked and given by another process (a second gateway,
the CLI, a tool) through the database alone.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from gateway.access.grants import add_grant, revoke_grant
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.state.database import create_state_engine
from gateway.state.models import Grant
from tests.serving import serving

pytestmark = pytest.mark.slow

PATIENTS = "/v1/datasets/patients/query"
STUDIES = "/v1/datasets/studies/query"
READ = {"limit": 3, "purpose": SURGICAL_PURPOSE}


def _client(url: str, workspace: Workspace, who: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {workspace.tokens[who]}"}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def _grant_id(workspace: Workspace, subject: str, dataset: str) -> int:
    engine = create_state_engine(workspace.config.state_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(
                    select(Grant.id).where(
                        Grant.subject == subject,
                        Grant.dataset == dataset,
                        Grant.status == "active",
                    )
                )
            )
    finally:
        engine.dispose()


def test_a_grant_revoked_through_the_api_refuses_the_next_read(workspace: Workspace) -> None:
    # mei reads patients through her org's grant: the revocation reaches her through it.
    grant = _grant_id(workspace, "surgibot", "patients")
    with serving(workspace.config_path) as url, _client(url, workspace, "mei") as mei:
        assert mei.post(PATIENTS, json=READ).status_code == 200
        with _client(url, workspace, "admin") as admin:
            revoked = admin.post(f"/v1/grants/{grant}/revoke", json={"reason": "test"})
        assert revoked.status_code == 200, revoked.text
        refused = mei.post(PATIENTS, json=READ)
        assert refused.status_code == 403, refused.text
        # Her org's other grant is untouched.
        assert mei.post(STUDIES, json=READ).status_code == 200


def test_grants_changed_by_another_process_are_enforced_by_the_next_read(
    workspace: Workspace,
) -> None:
    config = workspace.config
    grant = _grant_id(workspace, "erin", "studies")
    engine = create_state_engine(config.state_url)
    try:
        with serving(workspace.config_path) as url, _client(url, workspace, "erin") as erin:
            assert erin.post(STUDIES, json={"limit": 3}).status_code == 200
            assert erin.post(PATIENTS, json={"limit": 3}).status_code == 403
            revoke_grant(engine, grant)
            refused = erin.post(STUDIES, json={"limit": 3})
            assert refused.status_code == 403, refused.text
            add_grant(
                engine,
                config,
                subject_type="principal",
                subject="erin",
                dataset="patients",
                profile="anonymized",
                days=1,
                created_by="test",
                approvals=1,
            )
            allowed = erin.post(PATIENTS, json={"limit": 3})
            assert allowed.status_code == 200, allowed.text
    finally:
        engine.dispose()
