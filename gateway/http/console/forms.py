"""The form fields every console form shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form

FormText = Annotated[str, Form(max_length=4096)]
Csrf = Annotated[str, Form(max_length=128)]
