"""Amazon SES v2 transport: SendEmail with the finished message as raw content.

Throttling, quota and server-side errors are temporary; everything SES refuses on its merits
(MessageRejected, an unverified sender, a bad request) is permanent. botocore has already retried
throttling by its own retry mode before an error reaches here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from .transport import PermanentFailure, Receipt, TemporaryFailure

# SES v2 takes messages up to 40 MB, attachments included (SES developer guide, quotas).
DEFAULT_LIMIT = 40_000_000

_TEMPORARY_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "SendingPausedException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
    }
)
_NETWORK = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError)


def classify(exc: ClientError) -> TemporaryFailure | PermanentFailure:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Error"))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
    text = f"SES {code}: {error.get('Message', '')}".strip(": ")
    if code in _TEMPORARY_CODES or status >= 500 or status == 429:
        return TemporaryFailure(text)
    return PermanentFailure(text)


class SesTransport:
    name = "ses"

    def __init__(
        self,
        client: Any,
        *,
        configuration_set: str | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self._client = client
        self._configuration_set = configuration_set
        self._max_bytes = max_bytes

    def limit(self) -> int | None:
        return self._max_bytes if self._max_bytes is not None else DEFAULT_LIMIT

    def send(self, raw: bytes, sender: str, recipients: Sequence[str], name: str) -> Receipt:
        # SES takes or refuses a raw message as a whole: there is no per-recipient refusal.
        if not recipients:
            raise PermanentFailure("no recipient")
        params: dict[str, Any] = {
            "FromEmailAddress": sender,
            # For raw content the destination is the envelope; the headers still say To and Cc.
            "Destination": {"ToAddresses": list(recipients)},
            "Content": {"Raw": {"Data": raw}},
        }
        if self._configuration_set:
            params["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._client.send_email(**params)
        except ClientError as exc:
            raise classify(exc) from exc
        except _NETWORK as exc:
            raise TemporaryFailure(f"SES: {type(exc).__name__}: {exc}") from exc
        except BotoCoreError as exc:
            raise PermanentFailure(f"SES: {type(exc).__name__}: {exc}") from exc
        return Receipt(str(response.get("MessageId", "")))

    def close(self) -> None:
        pass
