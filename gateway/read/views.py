"""What a dataset looks like to a caller under a profile: which columns are returned,
how each is transformed, its output type, and whether it may be filtered or ordered on.

A column may be filtered or ordered on only when it is returned unchanged: a filter on
a pseudonymized, masked or generalized column would let a caller probe the hidden raw
values, so it is refused, never silently applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from gateway.config import Column, Dataset
from gateway.transforms import generalization
from policies import Profile, Treatment, treatment

RETURNED: frozenset[str] = frozenset({"value", "pseudonym", "mask", "generalize", "scrub"})


def default_generalization(source: pa.DataType) -> str:
    if pa.types.is_date(source) or pa.types.is_timestamp(source):
        return "year"
    if pa.types.is_integer(source) or pa.types.is_floating(source):
        return "band:10"
    return "prefix:3"


@dataclass(frozen=True, slots=True)
class ColumnView:
    name: str
    spec: Column
    treatment: Treatment
    source_type: pa.DataType
    output_type: pa.DataType
    rule: str | None = None  # the generalization applied, when treatment is "generalize"

    @property
    def returned(self) -> bool:
        return self.treatment in RETURNED

    @property
    def filterable(self) -> bool:
        return self.treatment == "value"

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "type": str(self.output_type),
            "classification": self.spec.classification,
            "treatment": self.treatment,
        }
        if self.rule:
            out["generalization"] = self.rule
        return out


@dataclass(frozen=True, slots=True)
class DatasetView:
    name: str
    dataset: Dataset
    profile: Profile
    columns: dict[str, ColumnView]  # classified columns present in the store, in store order

    @property
    def returned(self) -> list[ColumnView]:
        return [c for c in self.columns.values() if c.returned]


def build_view(
    name: str,
    dataset: Dataset,
    schema: pa.Schema,
    profile: Profile,
    allowed_columns: tuple[str, ...] | None = None,
) -> DatasetView:
    """Columns the store has but the configuration does not classify are left out
    entirely: an unclassified column is treated as internal and never returned."""
    columns: dict[str, ColumnView] = {}
    for field in schema:
        spec = dataset.columns.get(field.name)
        if spec is None:
            continue
        how = treatment(spec.classification, profile)
        if allowed_columns is not None and field.name not in allowed_columns:
            how = "drop"
        rule = None
        output = field.type
        if how in ("pseudonym", "mask", "scrub"):
            output = pa.string()
        elif how == "generalize":
            rule = spec.generalize or default_generalization(field.type)
            try:
                generalization.check_rule(rule, field.type)
            except generalization.GeneralizationError:
                how = "drop"  # a rule that cannot apply must not leak the raw value
            output = generalization.output_type(rule, field.type)
        columns[field.name] = ColumnView(field.name, spec, how, field.type, output, rule)
    return DatasetView(name, dataset, profile, columns)
