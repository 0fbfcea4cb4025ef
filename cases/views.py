import copy
import functools
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from cases import scope
from cases.filters import CaseFilter
from cases.forms import CaseEditForm, InterviewOutcomeForm, InterviewScheduleForm, PersonEditForm, TransitionForm
from cases.models import Case, CaseStatus, Interview, InterviewOutcome, Person
from cases.selectors import PERSON_SITES
from cases.selectors import case_detail as select_case_detail
from cases.selectors import case_list as select_cases
from cases.selectors import person_detail as select_person_detail
from cases.services import (
    NEEDS_PERMISSION,
    EditConflict,
    case_transition_from,
    case_update,
    interview_record_outcome,
    interview_schedule,
    person_update,
)
from cases.workflow import TransitionRefused, manual_targets

# Rows per page of the case list the user can choose (`per_page`, kept in the address);
# the first is the default: a page that reads at a glance on a tablet, and is light on a
# field office's connection (and half the server's work of 50 rows: bench/cases_bench.py).
PAGE_SIZES = (25, 50, 100)


def _page_size(request: HttpRequest) -> int:
    chosen = request.GET.get("per_page", "")
    return int(chosen) if chosen in {str(size) for size in PAGE_SIZES} else PAGE_SIZES[0]


@require_safe
@permission_required("cases.view_case", raise_exception=True)
def case_list(request: HttpRequest) -> HttpResponse:
    cases = scope.limit(select_cases(), scope.sites_of(request.user))
    filterset = CaseFilter(request.GET, queryset=cases, request=request)
    per_page = _page_size(request)
    page = Paginator(filterset.qs, per_page).get_page(request.GET.get("page"))
    context = {"filter": filterset, "page": page, "per_page": per_page, "page_sizes": PAGE_SIZES}
    return render(request, "cases/case_list.html", context)


def _case_page(
    request: HttpRequest,
    pk: int,
    *,
    transition_form: TransitionForm | None = None,
    schedule_form: InterviewScheduleForm | None = None,
) -> HttpResponse:
    """The case page; a form that failed validation is shown again with its errors."""
    user: Any = request.user
    try:
        detail = select_case_detail(
            pk, with_specific_needs=user.has_perm("cases.view_specific_needs"), sites=scope.sites_of(user)
        )
    except Case.DoesNotExist:
        raise scope.refuse(request, Case.objects, pk=pk) from None
    case = detail.case
    targets = manual_targets(case.status, held_from=case.status_before_hold, permissions=user.get_all_permissions())
    # Booking an interview moves the case to interview_scheduled unless it is there already.
    can_schedule = user.has_perm("cases.add_interview") and (
        case.status == CaseStatus.INTERVIEW_SCHEDULED or CaseStatus.INTERVIEW_SCHEDULED in targets
    )
    context = {
        "case": case,
        "detail": detail,
        "targets": targets,
        "transition_form": transition_form or TransitionForm(initial={"seen": case.status}),
        "schedule_form": (schedule_form or InterviewScheduleForm()) if can_schedule else None,
        "outcome_form": InterviewOutcomeForm() if user.has_perm("cases.change_interview") else None,
        "now": timezone.now(),
    }
    return render(request, "cases/case_detail.html", context)


@require_safe
@permission_required("cases.view_case", raise_exception=True)
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _case_page(request, pk)


@require_POST
@permission_required("cases.view_case", raise_exception=True)
def case_transition(request: HttpRequest, pk: int) -> HttpResponse:
    """Move the case; the workflow service decides, and says why when it refuses."""
    case = scope.get_or_404(request, Case.objects, pk=pk)
    form = TransitionForm(request.POST)
    if not form.is_valid():
        return _case_page(request, pk, transition_form=form)
    try:
        case_transition_from(
            case,
            seen=form.cleaned_data["seen"],
            to=form.cleaned_data["to"],
            actor=request.user,
            reason=form.cleaned_data["reason"],
        )
    except TransitionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("The case is now %(status)s.") % {"status": case.get_status_display()})
    return redirect(case)


@require_POST
@permission_required("cases.add_interview", raise_exception=True)
def interview_create(request: HttpRequest, pk: int) -> HttpResponse:
    case = scope.get_or_404(request, Case.objects, pk=pk)
    form = InterviewScheduleForm(request.POST)
    if not form.is_valid():
        return _case_page(request, pk, schedule_form=form)
    try:
        interview = interview_schedule(
            case,
            actor=request.user,
            scheduled_at=form.scheduled_at(),
            place=form.cleaned_data["place"],
            interviewer=form.cleaned_data["interviewer"],
            kind=form.cleaned_data["kind"],
        )
    except TransitionRefused as exc:
        messages.error(request, _("The interview was not booked: %(reason)s") % {"reason": exc})
        return _case_page(request, pk, schedule_form=form)
    messages.success(
        request, _("Interview booked for %(when)s.") % {"when": f"{interview.scheduled_at:%Y-%m-%d %H:%M}"}
    )
    return redirect(case)


@require_POST
@permission_required("cases.change_interview", raise_exception=True)
def interview_outcome(request: HttpRequest, pk: int) -> HttpResponse:
    interview = scope.get_or_404(request, Interview.objects.select_related("case"), "case__site", pk=pk)
    form = InterviewOutcomeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose an outcome."))
        return redirect(interview.case)
    try:
        interview_record_outcome(
            interview, actor=request.user, outcome=form.cleaned_data["outcome"], notes=form.cleaned_data["notes"]
        )
    except TransitionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Interview outcome recorded."))
        if form.cleaned_data["outcome"] == InterviewOutcome.RESCHEDULED:
            messages.info(request, _("Book the new date and time below."))
    return redirect(interview.case)


def _edit(
    request: HttpRequest,
    instance: Case | Person,
    form_class: Callable[..., CaseEditForm | PersonEditForm],
    update: Any,
    template: str,
    done_url: str,
) -> HttpResponse:
    """Show the edit form; save through the service, or show the conflict and keep the input."""
    if request.method != "POST":
        return render(request, template, {"object": instance, "form": form_class(instance=instance)})
    # A ModelForm writes its input onto its instance while validating: give it a copy,
    # so that the page's heading shows the saved record.
    form = form_class(request.POST, instance=copy.copy(instance))
    if not form.is_valid():
        return render(request, template, {"object": instance, "form": form})
    changes = form.changes()
    if not changes:
        messages.info(request, _("Nothing was changed."))
        return redirect(done_url)
    try:
        update(instance, actor=request.user, version=form.cleaned_data["version"], changes=changes)
    except EditConflict as conflict:
        current = conflict.current
        latest = current.history.select_related("history_user").first()
        context = {
            "object": current,
            "form": form.rebased(current),
            "conflict": form.conflict_rows(current),
            "latest": latest,
        }
        return render(request, template, context, status=409)
    messages.success(request, _("Saved."))
    return redirect(done_url)


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("cases.change_case", raise_exception=True)
def case_edit(request: HttpRequest, pk: int) -> HttpResponse:
    case = scope.get_or_404(request, Case.objects.select_related("site"), pk=pk)
    return _edit(request, case, CaseEditForm, case_update, "cases/case_edit.html", case.get_absolute_url())


@require_safe
@permission_required("cases.view_person", raise_exception=True)
def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user: Any = request.user
    try:
        detail = select_person_detail(
            pk, with_specific_needs=user.has_perm("cases.view_specific_needs"), sites=scope.sites_of(user)
        )
    except Person.DoesNotExist:
        raise scope.refuse(request, Person.objects, pk=pk) from None
    return render(request, "cases/person_detail.html", {"person": detail.person, "detail": detail})


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("cases.change_person", raise_exception=True)
def person_edit(request: HttpRequest, pk: int) -> HttpResponse:
    person = scope.get_or_404(request, Person.objects.select_related("case"), *PERSON_SITES, pk=pk)
    done_url = reverse("cases:person", args=[person.pk])
    needs = request.user.has_perm(NEEDS_PERMISSION)
    form = functools.partial(PersonEditForm, needs=needs)
    return _edit(request, person, form, person_update, "cases/person_edit.html", done_url)
