"""API errors as the real server reports them: `kind: Status` bodies with its reasons,
codes and messages (e.g. `nodes "x" not found`), their fields in the order the real server's
JSON encoder writes metav1.Status and metav1.StatusDetails (clients compare the text)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = ordered_details(self.details)
        body["code"] = self.code
        return body


# metav1.StatusDetails' fields in declaration order (k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")


def ordered_details(details: dict[str, Any]) -> dict[str, Any]:
    rank = {key: i for i, key in enumerate(_DETAILS_ORDER)}
    return dict(sorted(details.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(plural, group)} "{name}" not found',
                    {"name": name, "group": group, "kind": plural} if group else
                    {"name": name, "kind": plural})


def already_exists(plural: str, group: str, name: str) -> ApiError:
    details = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiError(409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists',
                    details)


def conflict(plural: str, group: str, name: str) -> ApiError:
    details = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again",
        details,
    )


def precondition_failed(plural: str, group: str, name: str, what: str) -> ApiError:
    details = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {what}',
                    details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    summary = ", ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"]
                        for c in causes)
    if len(causes) > 1:
        summary = "[" + summary + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{kind}{"." + group if group else ""} "{name}" is invalid: {summary}',
                    details)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types '
                    f'include: application/json-patch+json, application/merge-patch+json, '
                    f'application/apply-patch+yaml; got "{content_type}"')


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def service_unavailable(message: str = "the server is currently unable to handle the request") -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def too_many_requests(retry_after_s: int) -> ApiError:
    """What kube-apiserver's max-in-flight and priority-and-fairness filters answer."""
    return ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                    {"retryAfterSeconds": retry_after_s})


def too_large() -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", "the request is too large")
