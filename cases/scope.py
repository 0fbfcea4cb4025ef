"""Site scope: a user limited to some sites sees, searches, exports and changes only the
records of those sites.

A user is limited by SiteAssignment rows (set by Administrators on the user's admin page);
a user with none works across every site, as most camp teams do. A record out of scope
answers 404, exactly as one that does not exist, so that its existence is not told; the
refusal is marked on the request and accounts.middleware.AccessLogMiddleware writes it to
the access log.

Selectors take `sites` (a frozenset of site ids, or None for every site) and views get it
with `sites_of(request.user)`: read once a request with the user's permissions
(accounts.backends), and never for anonymous users.
"""

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Manager, Model, Q, QuerySet
from django.http import Http404, HttpRequest

from cases.models import Site, SiteAssignment

Sites = frozenset[int] | None
_CACHE = "_relocation_sites"


def remember_sites(user: Any, ids: set[int]) -> None:
    """Keep the sites `user` is limited to (assignments to the sites `ids`) on the user object."""
    setattr(user, _CACHE, frozenset(ids) or None)


def sites_of(user: Any) -> Sites:
    """The ids of the sites `user` is limited to, or None when the user sees every site.
    Read with the user's permissions (accounts.backends), or here when those were not."""
    if not user.is_authenticated:
        return frozenset()
    if not hasattr(user, _CACHE):
        user.get_all_permissions()
    if not hasattr(user, _CACHE):
        remember_sites(user, set(SiteAssignment.objects.filter(user_id=user.pk).values_list("site_id", flat=True)))
    return getattr(user, _CACHE)


def in_sites(sites: Sites, *paths: str) -> Q:
    """A condition true for rows at one of `sites` through any of `paths` (default "site")."""
    condition = Q()
    if sites is None:
        return condition
    for path in paths or ("site",):
        condition |= Q(**{f"{path}__in": sites})
    return condition if len(condition) else Q(pk__in=[])


def limit[M: Model](queryset: QuerySet[M] | Manager[M], sites: Sites, *paths: str) -> QuerySet[M]:
    """`queryset` narrowed to `sites` (through `paths`, default "site"); unchanged for None."""
    return queryset.all() if sites is None else queryset.filter(in_sites(sites, *paths))


def narrow_site_choices(filterset: Any, sites: Sites) -> None:
    """Offer a filterset's `site` filter only the sites of `sites` (before its form is made):
    another site is then an invalid choice, refused like any bad value."""
    if sites is not None and "site" in filterset.filters:
        filterset.filters["site"].queryset = limit(Site.objects, sites, "pk")


def refuse(request: HttpRequest, queryset: QuerySet[Any] | Manager[Any], **lookup: Any) -> Http404:
    """The 404 for a record not found in the user's scope; when it exists elsewhere, the
    refusal is marked for the access log. Raise what it returns."""
    if queryset.filter(**lookup).exists():
        request.scope_refused = True  # type: ignore[attr-defined]
    return Http404("No such record.")


def get_or_404[M: Model](request: HttpRequest, queryset: QuerySet[M] | Manager[M], *paths: str, **lookup: Any) -> M:
    """The record matching `lookup` within the user's sites, or Http404 (logged if out of scope)."""
    try:
        return limit(queryset, sites_of(request.user), *paths).get(**lookup)
    except ObjectDoesNotExist:
        raise refuse(request, queryset, **lookup) from None
