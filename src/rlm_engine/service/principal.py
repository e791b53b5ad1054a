"""Who asks: the tenant that owns what a request creates or reads, and the user in it."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

LOCAL_TENANT = "local"


@dataclass(frozen=True, slots=True)
class Principal:
    """A tenant scopes runs, sessions and memory; the CLI acts as `Principal.local()`."""

    tenant: str
    user: str

    @classmethod
    def local(cls) -> Principal:
        """The single tenant of a machine without API keys, as the logged-in user."""
        return cls(tenant=LOCAL_TENANT, user=getpass.getuser())

    @property
    def memory_name(self) -> str:
        """The name of this user's memory scope: the bare user name for the local tenant
        (what runs recorded before tenants used), ``tenant:user`` otherwise, so two
        tenants' users of the same name never share a memory."""
        if self.tenant == LOCAL_TENANT:
            return self.user
        return f"{self.tenant}:{self.user}"
