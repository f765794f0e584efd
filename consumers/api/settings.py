"""Settings of the market-data API and dashboard (``tickwire api``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from tickwire.settings import AlpacaSettings


class ApiSettings(AlpacaSettings):
    """The API: where it listens and who may write (and Alpaca's REST API, for previous closes)."""

    api_host: str = Field("127.0.0.1", validation_alias="TICKWIRE_API_HOST",
                          description="interface the API listens on (0.0.0.0 in a container)")
    api_port: int = Field(8004, ge=0, le=65535, validation_alias="TICKWIRE_API_PORT",
                          description="port of the API and dashboard; 0 = any free port")
    api_token: SecretStr | None = Field(None, validation_alias="TICKWIRE_API_TOKEN",
                                        description="when set, writes need Authorization: Bearer <token>")
