"""Serve a rest-json AWS service in process, routed by botocore's own service model.

A `RestJsonStub` is a botocore `before-send` handler: botocore has already validated the
parameters, serialised and signed the request; the stub turns the HTTP request back into
operation parameters (using the model's URI templates and member locations), calls a Python
handler, and answers with an `AWSResponse` that botocore parses as if it came from AWS. So
clients, paginators, waiters and error classes run unchanged.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.model import OperationModel, ServiceModel, Shape

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/")


class ServiceError(Exception):
    """An AWS error response: `code` becomes `x-amzn-ErrorType`, status comes from the model."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Caller:
    """Who sent the request, as the signature says: access key, region, and resolved account."""

    access_key: str
    region: str
    account_id: str


Handler = Callable[[dict[str, Any], Caller], Mapping[str, Any] | None]


class _RawBody(io.BytesIO):
    """The raw body object botocore reads through `stream()`, like urllib3's response."""

    def stream(self, amt: int = 1024 * 64, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    operation: OperationModel


@cache
def _service_model(service_name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service_name)


@cache
def _routes(service_name: str) -> tuple[_Route, ...]:
    """One route per operation, from `http.method` and `http.requestUri` in the model.

    More literal characters sort first, so `/analyzer/findings/statistics` wins over
    `/analyzer/{analyzerName}` for the same method.
    """
    model = _service_model(service_name)
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        path = operation.http["requestUri"].split("?", 1)[0]
        regex = ""
        for literal, label in re.findall(r"([^{]*)(?:\{([^}]+)\})?", path):
            regex += re.escape(literal)
            if label:
                greedy = label.endswith("+")
                regex += f"(?P<{label.rstrip('+')}>{'.+' if greedy else '[^/]+'})"
        literal_length = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append(
            (literal_length, _Route(operation.http["method"], re.compile(regex), operation))
        )
    routes.sort(key=lambda item: -item[0])
    return tuple(route for _, route in routes)


class RestJsonStub:
    """The `before-send` handler for one service; unknown operations get an AWS-style 400."""

    def __init__(
        self,
        service_name: str,
        handlers: Mapping[str, Handler],
        resolve_account: Callable[[str], str],
    ) -> None:
        self._service_name = service_name
        self._handlers = dict(handlers)
        self._resolve_account = resolve_account
        unknown = set(self._handlers) - set(_service_model(service_name).operation_names)
        if unknown:
            raise ValueError(f"handlers for operations not in the model: {sorted(unknown)}")

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        route, labels = self._match(request.method or "GET", url.path)
        handler = self._handlers.get(route.operation.name) if route else None
        if route is None or handler is None:
            what = route.operation.name if route else f"{request.method} {url.path}"
            message = f"The sandbox {self._service_name} does not implement {what}."
            return _error_response(
                request.url, ServiceError("UnknownOperationException", message, 400)
            )
        operation = route.operation
        try:
            params = _request_params(operation, labels, url.query, request)
            output = handler(params, self._caller(request))
        except ServiceError as error:
            if error.status is None:
                error.status = _error_status(operation, error.code)
            return _error_response(request.url, error)
        status = int(operation.http.get("responseCode", 200))
        body = b"" if output is None else json.dumps(output, default=_json_default).encode()
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())}
        return AWSResponse(request.url, status, headers, _RawBody(body))

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
        for route in _routes(self._service_name):
            if route.method == method and (match := route.pattern.fullmatch(path)):
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        return None, {}

    def _caller(self, request: AWSPreparedRequest) -> Caller:
        authorization = request.headers.get("Authorization", b"")
        text = authorization.decode() if isinstance(authorization, bytes) else str(authorization)
        found = _CREDENTIAL.search(text)
        if found is None:
            raise ServiceError("MissingAuthenticationTokenException", "Request is not signed.", 403)
        access_key, region = found.groups()
        return Caller(access_key, region, self._resolve_account(access_key))


def _request_params(
    operation: OperationModel, labels: Mapping[str, str], query: str, request: AWSPreparedRequest
) -> dict[str, Any]:
    """Invert botocore's rest-json serialiser: URI labels, query string, headers, JSON body."""
    shape = operation.input_shape
    if shape is None:
        return {}
    raw_body = request.body or b""
    if hasattr(raw_body, "read"):
        raw_body = raw_body.read()
    body = json.loads(raw_body) if raw_body else {}
    querystring = parse_qs(query, keep_blank_values=True)
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            if wire_name in labels:
                params[name] = labels[wire_name]
        elif location == "querystring":
            if wire_name in querystring:
                values = querystring[wire_name]
                params[name] = values if member.type_name == "list" else _scalar(member, values[0])
        elif location == "header":
            value = request.headers.get(wire_name)
            if value is not None:
                params[name] = _scalar(
                    member, value.decode() if isinstance(value, bytes) else value
                )
        elif wire_name in body:
            params[name] = body[wire_name]
    return params


def _scalar(shape: Shape, value: str) -> Any:
    if shape.type_name in ("integer", "long"):
        return int(value)
    if shape.type_name == "boolean":
        return value.lower() == "true"
    return value


def _error_status(operation: OperationModel, code: str) -> int:
    """The status the model gives the error, also when this operation does not list it."""
    shapes = {shape.name: shape for shape in operation.error_shapes}
    shape = shapes.get(code)
    if shape is None and code in operation.service_model.shape_names:
        shape = operation.service_model.shape_for(code)
    if shape is None:
        return 400
    return int(shape.metadata.get("error", {}).get("httpStatusCode", 400))


def _error_response(url: str, error: ServiceError) -> AWSResponse:
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": error.code,
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    body = json.dumps({"message": error.message}).encode()
    return AWSResponse(url, error.status or 400, headers, _RawBody(body))


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return iso8601(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def iso8601(moment: datetime) -> str:
    """UTC with a `Z`, milliseconds only when there are any, as AWS's JSON APIs write it."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"
