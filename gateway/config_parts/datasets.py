"""The ``datasets`` section: each dataset's store, module and classified columns."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from gateway.config_parts.common import Classification, MaskKind, Strict

_GENERALIZATION = re.compile(
    r"^(keep|year|month|band:\d+|prefix:\d+|bins:-?\d+(\.\d+)?(,-?\d+(\.\d+)?)*)$"
)


class Column(Strict):
    classification: Classification = Field(alias="class")
    domain: str | None = Field(None, description="Identifier domain shared across datasets.")
    mask: MaskKind | None = Field(None, description="How a direct identifier is masked.")
    generalize: str | None = Field(
        None,
        description="keep | year | month | band:N | prefix:N | bins:a,b,c (quasi-identifiers).",
    )
    bounds: tuple[float, float] | None = Field(None, description="Clamping bounds for sums.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("generalize")
    @classmethod
    def _known_generalization(cls, value: str | None) -> str | None:
        if value is not None and not _GENERALIZATION.match(value):
            raise ValueError("must be keep, year, month, band:N, prefix:N or bins:a,b,...")
        return value

    @model_validator(mode="after")
    def _options_fit_class(self) -> Column:
        if self.domain is not None and self.classification != "identifier":
            raise ValueError("'domain' applies to identifier columns only")
        if self.mask is not None and self.classification != "direct_identifier":
            raise ValueError("'mask' applies to direct_identifier columns only")
        if self.generalize is not None and self.classification != "quasi_identifier":
            raise ValueError("'generalize' applies to quasi_identifier columns only")
        return self


class LDiversity(Strict):
    column: str = Field(description="The sensitive column whose values must be diverse.")
    l: int = Field(2, ge=2, description="Distinct sensitive values each group must hold.")  # noqa: E741


class Dataset(Strict):
    module: str
    store: str
    location: str
    format: Literal["parquet", "csv", "table"] = "parquet"
    description: str = ""
    k: int = Field(5, ge=2, description="k for k-anonymity under the anonymized profile.")
    min_group_size: int = Field(10, ge=2, description="Smallest group an aggregate reveals.")
    l_diversity: LDiversity | None = Field(
        None, description="Also require l distinct sensitive values per group (anonymized)."
    )
    options: dict[str, Any] = Field(default_factory=dict)
    columns: dict[str, Column]

    @field_validator("columns", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `name: public` is shorthand for `name: {class: public}`.
        if isinstance(value, dict):
            return {k: ({"class": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value
