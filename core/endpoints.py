"""A model the twin calls over an OpenAI-compatible API (an expert, the training teacher or judge) as settings
describe it, and the most private memory it may receive."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

VisibilityName = Literal["private", "contacts", "public"]


class ModelEndpoint(BaseModel):
    """Any OpenAI-compatible endpoint, and the most private memory it may receive."""

    url: str = Field(description="OpenAI-compatible /v1 base URL.")
    model: str
    api_key: SecretStr | None = None
    visibility: VisibilityName = Field(
        default="public", description="The most private memory it may receive: private, contacts or public."
    )
    timeout: float = Field(default=120.0, gt=0)
