"""RFC 9457 problem details: every error the API answers is application/problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from api.services import ServiceError
from store.exceptions import StoreError
from store.queries import BadCursor

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 422: "Unprocessable content",
          500: "Internal server error", 503: "Service unavailable"}


class Problem(BaseModel):
    """RFC 9457 problem details (extension members allowed)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem(status: int, detail: str, request: Request | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = Problem(title=TITLES.get(status, "Error"), status=status, detail=detail,
                   instance=request.url.path if request is not None else None, **extra)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status,
                        media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    """Exception handlers: every error is a problem with a `detail` a person can act on."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return problem(exc.status, exc.detail, request, **exc.extra)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return problem(exc.status_code, detail, request,
                       headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                  for e in exc.errors()]
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem(422, f"the request is not valid: {where}", request, errors=errors)

    @app.exception_handler(BadCursor)
    async def bad_cursor(request: Request, exc: BadCursor) -> JSONResponse:
        return problem(422, str(exc), request)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        status = 503 if exc.transient else 500
        return problem(status, f"the audit store could not answer: {exc}", request)

    @app.exception_handler(TimeoutError)
    async def timeout(request: Request, exc: TimeoutError) -> JSONResponse:
        return problem(503, "a call the API made did not answer in time (API_TIMEOUT_SECONDS)",
                       request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return problem(500, f"unexpected error: {type(exc).__name__}", request)
