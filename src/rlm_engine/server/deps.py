"""What handlers take by dependency: the services and the caller's principal.

The principal is attached router-wide (so a route cannot forget authentication) and
taken again by each handler as `CurrentPrincipal` (FastAPI resolves it once per request).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rlm_engine.server.errors import AuthenticationError
from rlm_engine.service import Services
from rlm_engine.service.keys import authenticate
from rlm_engine.service.limits import ServiceLimits
from rlm_engine.service.principal import Principal
from rlm_engine.settings import Settings

# auto_error=False: a missing key is answered by `get_principal` (401 with our error body
# and WWW-Authenticate), and with no key in the store none is needed at all.
bearer = HTTPBearer(auto_error=False, description="an API key: `rlm keys create --tenant NAME`")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_limits(request: Request) -> ServiceLimits:
    limits: ServiceLimits = request.app.state.limits
    return limits


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LimitsDep = Annotated[ServiceLimits, Depends(get_limits)]


def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller: the tenant of its API key; the local tenant while no key exists.

    Sync on purpose: FastAPI runs it on a worker thread, as the store's reads expect.
    Keys are checked on every request (not cached), so `rlm keys create` and `rlm keys
    revoke` in another process take effect at once."""
    store = services.store
    if not store.any_api_keys():
        # Keyless, the server is one local tenant for every caller; a token sent anyway
        # (SDKs such as OpenAI's always send one) changes nothing.
        return Principal.local()
    if credentials is None:
        raise AuthenticationError("this server needs an API key")
    who = authenticate(store, credentials.credentials)
    if who is None:
        raise AuthenticationError("the API key is unknown or revoked")
    return who


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
