"""What routes ask before they act: may this user do `action` to `resource`, and within what?"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from stead.auth.handlers import CustomAuth
from stead.auth.user import AuthUser
from stead.errors import AuthError
from stead.storage.access import UNRESTRICTED, Access, InvalidFilter

logger = logging.getLogger("stead.auth")


class Authorizer:
    """One request's user and the deployment's handlers. Without custom auth, everything an
    authenticated (or, with auth off, any) request asks is allowed."""

    def __init__(self, custom: CustomAuth | None, user: AuthUser | None) -> None:
        self._custom = custom
        self.user = user

    async def check(
        self, resource: str, action: str, value: dict[str, Any], within: Access = UNRESTRICTED
    ) -> Access:
        """Run the handler for `resource.action` on `value`, which it may change in place;
        returns `within` narrowed to what the handler allows. Refusals raise AuthError."""
        metadata_filter = await self.filter(resource, action, value)
        try:
            return within.restrict(resource, metadata_filter)
        except InvalidFilter as exc:
            logger.error("auth handler for %s.%s: %s", resource, action, exc)
            raise AuthError(500, "Authorization handler returned an invalid filter") from None

    async def filter(
        self, resource: str, action: str, value: dict[str, Any]
    ) -> Mapping[str, Any] | None:
        if self._custom is None or self.user is None:
            return None
        return await self._custom.authorize(self.user, resource, action, value)
