"""Site transfers: one case from its page, many cases from /cases/transfers/new/, and their list."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_safe

from cases import scope
from cases.forms import BulkSiteTransferForm, SiteTransferForm
from cases.models import Case, SiteTransfer
from cases.selectors import case_present_members, site_transfer_list, site_transfer_preview
from cases.services import SiteTransferRefused, site_transfer

PAGE_SIZE = 50


def _moved_message(transfer: SiteTransfer) -> str:
    return ngettext(
        "%(persons)d person moved from %(from)s to %(to)s.",
        "%(persons)d persons moved from %(from)s to %(to)s.",
        transfer.person_count,
    ) % {"persons": transfer.person_count, "from": transfer.from_site.name, "to": transfer.to_site.name}


@require_safe
@permission_required("cases.view_sitetransfer", raise_exception=True)
def transfer_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(site_transfer_list(scope.sites_of(request.user)), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "cases/transfer_list.html", {"page": page})


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("cases.change_case", raise_exception=True)
def case_site_transfer(request: HttpRequest, pk: int) -> HttpResponse:
    """Move one case and its present members to another site (an edit of the case's details)."""
    case = scope.get_or_404(request, Case.objects.select_related("site"), pk=pk)
    sites = scope.sites_of(request.user)
    if request.method != "POST":
        form = SiteTransferForm(case=case, sites=sites)
    else:
        form = SiteTransferForm(request.POST, case=case, sites=sites)
        if form.is_valid():
            try:
                transfer = site_transfer(
                    actor=request.user,
                    cases=[case],
                    to_site=form.cleaned_data["to_site"],
                    date=form.cleaned_data["date"],
                    reason=form.cleaned_data["reason"],
                )
            except SiteTransferRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _moved_message(transfer))
                return redirect(case)
    context = {"case": case, "form": form, "present": case_present_members(case)}
    return render(request, "cases/case_site_transfer.html", context)


def _initial_selection(request: HttpRequest) -> dict[str, Any]:
    """A link from a case list may name the cases (?case=1&case=2) and their site (?site=3)."""
    initial: dict[str, Any] = {}
    ids = [value for value in request.GET.getlist("case") if value.isdigit()]
    if ids:
        initial["cases"] = ",".join(ids)
    if request.GET.get("site", "").isdigit():
        initial["from_site"] = request.GET["site"]
    return initial


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("cases.transfer_persons", raise_exception=True)
def transfer_new(request: HttpRequest) -> HttpResponse:
    """Choose, check the numbers, confirm: nothing moves before the confirmation.

    The confirmation carries the numbers it showed; if the selection has changed since
    (someone moved or relocated a case meanwhile), it is shown again with the new ones.
    """
    template = "cases/transfer_new.html"
    sites = scope.sites_of(request.user)
    if request.method != "POST":
        form = BulkSiteTransferForm(initial=_initial_selection(request), sites=sites)
        return render(request, template, {"form": form})
    form = BulkSiteTransferForm(request.POST, sites=sites)
    if not form.is_valid() or "edit" in request.POST:
        return render(request, template, {"form": form})
    data = form.cleaned_data
    preview = site_transfer_preview(
        from_site=data["from_site"], to_site=data["to_site"], statuses=data["statuses"], case_ids=data["cases"]
    )
    if not preview.case_count:
        form.add_error(None, _("No case of this selection has anyone present at the site: there is nobody to move."))
        return render(request, template, {"form": form})
    expected = f"{preview.case_count}:{preview.person_count}"
    changed = "confirm" in request.POST and request.POST.get("expected") != expected
    if "confirm" in request.POST and not changed:
        try:
            transfer = site_transfer(
                actor=request.user,
                cases=preview.cases,
                to_site=data["to_site"],
                date=data["date"],
                reason=data["reason"],
            )
        except SiteTransferRefused as exc:
            form.add_error(None, str(exc))
            return render(request, template, {"form": form})
        messages.success(request, _moved_message(transfer))
        return redirect("cases:transfer_list")
    context = {"form": form, "preview": preview, "expected": expected, "changed": changed, "confirming": True}
    return render(request, template, context)
