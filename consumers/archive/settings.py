"""The archiver's configuration, read once per process from the function's environment
(deploy/template.yaml sets every variable; a missing one fails at start-up with its name)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ArchiverSettings(BaseSettings):
    """ARCHIVE_BUCKET, STREAM_NAME."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    archive_bucket: str
    stream_name: str
