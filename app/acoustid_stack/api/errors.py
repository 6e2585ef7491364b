"""The numbered API errors (reference §1.3): code, HTTP status and message, as upstream.

Clients (pyacoustid, Picard, beets) read `error.code` and `error.message`; both are part of
the protocol, so messages are upstream's, word for word.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    UNKNOWN_FORMAT = 1
    MISSING_PARAMETER = 2
    INVALID_FINGERPRINT = 3
    INVALID_APIKEY = 4
    INTERNAL = 5
    INVALID_USER_APIKEY = 6
    INVALID_UUID = 7
    INVALID_DURATION = 8
    INVALID_BITRATE = 9
    INVALID_FOREIGNID = 10
    INVALID_MAX_DURATION_DIFF = 11
    NOT_ALLOWED = 12
    SERVICE_UNAVAILABLE = 13
    TOO_MANY_REQUESTS = 14
    INVALID_MUSICBRAINZ_ACCESS_TOKEN = 15
    INSECURE_REQUEST = 16
    UNKNOWN_APPLICATION = 17
    FINGERPRINT_NOT_FOUND = 18
    REQUEST_TOO_LARGE = 19


_HTTP_STATUS = {
    ErrorCode.INTERNAL: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.TOO_MANY_REQUESTS: 429,
    ErrorCode.FINGERPRINT_NOT_FOUND: 404,
    ErrorCode.REQUEST_TOO_LARGE: 413,
}


class ApiError(Exception):
    """An error the client is told about in the response envelope; never logged as a failure."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 400)


def unknown_format() -> ApiError:
    # Upstream resets the format to json before building the message, so it always names
    # "json"; clients may match on it, so we keep the quirk.
    return ApiError(ErrorCode.UNKNOWN_FORMAT, 'unknown format "json"')


def missing_parameter(name: str) -> ApiError:
    return ApiError(ErrorCode.MISSING_PARAMETER, f'missing required parameter "{name}"')


def invalid_fingerprint() -> ApiError:
    return ApiError(ErrorCode.INVALID_FINGERPRINT, "invalid fingerprint")


def invalid_apikey() -> ApiError:
    return ApiError(ErrorCode.INVALID_APIKEY, "invalid API key")


def internal() -> ApiError:
    return ApiError(ErrorCode.INTERNAL, "internal error")


def invalid_user_apikey() -> ApiError:
    return ApiError(
        ErrorCode.INVALID_USER_APIKEY,
        'invalid user API key ("User with the API key does not exist")',
    )


def invalid_uuid(name: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_UUID, f'parameter "{name}" is not a valid UUID')


def invalid_duration(name: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_DURATION, f'parameter "{name}" must be a positive integer')


def invalid_bitrate(name: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_BITRATE, f'parameter "{name}" must be a positive integer')


def invalid_foreignid(name: str) -> ApiError:
    return ApiError(
        ErrorCode.INVALID_FOREIGNID,
        f'parameter "{name}" is not a valid foreign ID, it must be in the format vendor:id',
    )


def foreignid_too_long(name: str, limit: int) -> ApiError:
    # Upstream stores any length; over-long ids break the unique index they are stored under,
    # so we refuse them with the code clients already handle for a bad foreign id.
    return ApiError(
        ErrorCode.INVALID_FOREIGNID,
        f'parameter "{name}" is not a valid foreign ID, it must be at most {limit} characters',
    )


def invalid_max_duration_diff(name: str) -> ApiError:
    return ApiError(
        ErrorCode.INVALID_MAX_DURATION_DIFF, f'parameter "{name}" must be between 1 and 30'
    )


def not_allowed() -> ApiError:
    return ApiError(ErrorCode.NOT_ALLOWED, "not allowed")


def service_unavailable() -> ApiError:
    return ApiError(ErrorCode.SERVICE_UNAVAILABLE, "service currently unavailable, try again later")


def too_many_requests(rate: float) -> ApiError:
    return ApiError(
        ErrorCode.TOO_MANY_REQUESTS,
        f"rate limit ({rate:f} requests per second) exceeded, try again later",
    )


def fingerprint_not_found() -> ApiError:
    return ApiError(ErrorCode.FINGERPRINT_NOT_FOUND, "fingerprint not found")


def request_too_large() -> ApiError:
    return ApiError(ErrorCode.REQUEST_TOO_LARGE, "request too large")


def invalid_musicbrainz_access_token() -> ApiError:
    return ApiError(ErrorCode.INVALID_MUSICBRAINZ_ACCESS_TOKEN, "invalid MusicBrainz access token")


def insecure_request() -> ApiError:
    return ApiError(ErrorCode.INSECURE_REQUEST, "only requests over HTTPS are allowed here")
