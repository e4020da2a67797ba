"""Every configuration setting is documented in the README's reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway import config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
SECTIONS: list[type[BaseModel]] = [
    config.GatewaySection,
    config.PolicySection,
    config.LocalStore,
    config.S3Store,
    config.PostgresStore,
    config.Module,
    config.Separation,
    config.Dataset,
    config.Column,
    config.Budgets,
    config.LDiversity,
]


@pytest.mark.parametrize("model", SECTIONS, ids=lambda m: m.__name__)
def test_every_setting_is_in_the_readme(model: type[BaseModel]):
    reference = README.split("### `kiteline.yaml` reference", 1)[1]
    for name, field in model.model_fields.items():
        documented = field.alias or name
        assert f"{documented}" in reference, f"{model.__name__}.{documented} is undocumented"
