"""The ``stores`` section: where datasets live, one entry per store, by kind.

Credentials are always references (``env:NAME`` or ``file:PATH``), never inline."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from gateway.config_parts.common import Strict, ensure_reference


class LocalStore(Strict):
    kind: Literal["local"]
    root: str = Field(description="Folder of Parquet/CSV files; relative to the config file.")


class S3Store(Strict):
    kind: Literal["s3"]
    endpoint_url: str
    bucket: str
    prefix: str = ""
    region: str = "us-east-1"
    path_style: bool = True
    access_key_id: str
    secret_access_key: str
    verify_tls: bool = True
    ca_bundle: str | None = None

    @field_validator("access_key_id", "secret_access_key")
    @classmethod
    def _is_reference(cls, value: str) -> str | None:
        return ensure_reference(value, "credentials must be references (env:NAME or file:PATH)")


class PostgresStore(Strict):
    kind: Literal["postgres"]
    url: str = Field(description="Reference to the connection URL: env:NAME or file:PATH.")
    statement_timeout_ms: int = Field(30_000, ge=100)

    @field_validator("url")
    @classmethod
    def _is_reference(cls, value: str) -> str | None:
        message = "the URL may hold a password: give a reference (env:NAME or file:PATH)"
        return ensure_reference(value, message)


class SparkStore(Strict):
    kind: Literal["spark"]
    url: str = Field(description="Spark Connect endpoint, sc://host:15002, without parameters.")
    token: str | None = Field(None, description="Bearer token reference: env:NAME or file:PATH.")
    tls: bool = Field(True, description="Speak TLS to the server (a token needs it off loopback).")
    ca_bundle: str | None = Field(None, description="PEM file of the CAs that sign the server.")
    root: str = Field("", description="Prefix of relative Parquet/CSV dataset locations.")
    timeout_s: float = Field(300.0, gt=0, description="Longest wait for Spark's first answer.")

    @field_validator("token")
    @classmethod
    def _is_reference(cls, value: str | None) -> str | None:
        return ensure_reference(value, "the token must be a reference (env:NAME or file:PATH)")


Store = Annotated[LocalStore | S3Store | PostgresStore | SparkStore, Field(discriminator="kind")]
