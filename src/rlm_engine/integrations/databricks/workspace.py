"""The workspace client, with the SDK's standard authentication.

`databricks-sdk` resolves credentials itself, in its documented order: explicit arguments,
then `DATABRICKS_HOST` / `DATABRICKS_TOKEN` (or the OAuth variables), then a profile of
`~/.databrickscfg`, then the identity of the job or notebook the code runs in. Nothing here
copies a credential anywhere: callers hold the client, never a token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlm_engine.errors import ConfigurationError, MissingExtraError, RLMError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

AUTH_HINT = (
    "set DATABRICKS_HOST and DATABRICKS_TOKEN, or pass a profile of ~/.databrickscfg "
    "(`databricks auth login --host URL` writes one); inside a Databricks job the job's "
    "own identity is used"
)


class WorkspaceError(RLMError):
    """The workspace refused or failed a request; the message says which and why."""

    cause_kind = "databricks"


class WorkspaceAuthError(WorkspaceError, ConfigurationError):
    """The workspace could not be reached with the credentials found, or refused them."""

    hint = AUTH_HINT


def sdk_missing(what: str) -> MissingExtraError:
    return MissingExtraError(what, "databricks", "databricks-sdk")


def workspace_client(
    profile: str | None = None, *, host: str | None = None, token: str | None = None
) -> WorkspaceClient:
    """A `WorkspaceClient` authenticated the SDK's standard way (see the module docstring).

    `profile` names a section of `~/.databrickscfg`; `host` and `token`, when given, take
    precedence over the environment (tests and explicit configuration)."""
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError as exc:
        raise sdk_missing("A Databricks workspace") from exc
    try:
        return WorkspaceClient(profile=profile, host=host, token=token)
    except ValueError as exc:
        # The SDK raises ValueError when no credential strategy applies or a profile is
        # missing; its message names the strategy, never a secret value.
        where = f"profile {profile!r}" if profile else "DATABRICKS_HOST/DATABRICKS_TOKEN"
        raise WorkspaceAuthError(
            f"cannot authenticate to a Databricks workspace ({where}): {exc}"
        ) from exc


def workspace_error(exc: Exception, doing: str) -> Exception:
    """An SDK failure of `doing` as a typed error (raise it `from exc`): refused
    credentials as `WorkspaceAuthError`, anything else the API refused as `WorkspaceError`;
    exceptions that are not the SDK's are returned unchanged."""
    from databricks.sdk.errors import PermissionDenied, Unauthenticated
    from databricks.sdk.errors.base import DatabricksError

    if isinstance(exc, Unauthenticated):
        return WorkspaceAuthError(f"{doing}: the workspace refused the credentials: {exc}")
    if isinstance(exc, PermissionDenied):
        return WorkspaceError(
            f"{doing}: permission denied: {exc}",
            hint="the identity in use lacks a grant: ask a workspace admin for it, or use "
            "another profile or token",
        )
    if isinstance(exc, DatabricksError):
        return WorkspaceError(
            f"{doing}: {exc}", hint="check the name or path, and that it exists in this workspace"
        )
    if isinstance(exc, ValueError) and "default auth" in str(exc):
        return WorkspaceAuthError(f"{doing}: {exc}")
    return exc
