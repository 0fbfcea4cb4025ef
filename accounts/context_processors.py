from typing import Any

from django.http import HttpRequest

from accounts.roles import role_of


def roles(request: HttpRequest) -> dict[str, Any]:
    """The user's role, for navigation. Permissions stay the source of truth."""
    return {"user_role": role_of(request.user)}
