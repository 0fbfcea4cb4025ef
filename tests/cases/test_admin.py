import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from cases.models import Case, CaseStatus
from tests.factories import CaseFactory

CHANGELIST = reverse("admin:cases_case_changelist")


@pytest.mark.django_db
def test_the_admin_moves_cases_through_the_workflow_with_a_reason(client_for):
    ok = CaseFactory(status=CaseStatus.INTERVIEWED, size=1)
    refused = CaseFactory(status=CaseStatus.REGISTERED, size=1)
    client = client_for("Staff")
    ask = client.post(CHANGELIST, {"action": "transition_cases", ACTION_CHECKBOX_NAME: [ok.pk, refused.pk]})
    assert ask.status_code == 200
    assert "Reason" in ask.text
    done = client.post(
        CHANGELIST,
        {
            "action": "transition_cases",
            ACTION_CHECKBOX_NAME: [ok.pk, refused.pk],
            "apply": "1",
            "to": "eligible",
            "reason": "Protection needs confirmed",
        },
        follow=True,
    )
    messages = [str(m) for m in done.context["messages"]]
    assert "1 case moved." in messages
    assert any(refused.case_no in m and "cannot move from Registered to Eligible" in m for m in messages)
    assert Case.objects.get(pk=ok.pk).status == CaseStatus.ELIGIBLE
    assert Case.objects.get(pk=refused.pk).status == CaseStatus.REGISTERED


@pytest.mark.django_db
def test_the_admin_shows_status_read_only(client_for):
    case = CaseFactory(status=CaseStatus.ELIGIBLE, size=1)
    client = client_for("Administrator")
    page = client.get(reverse("admin:cases_case_change", args=[case.pk]))
    assert 'name="status"' not in page.text
    client.post(
        reverse("admin:cases_case_change", args=[case.pk]),
        {"case_no": case.case_no, "site": case.site.pk, "status": "relocated", "determination": "pending"},
    )
    assert Case.objects.get(pk=case.pk).status == CaseStatus.ELIGIBLE
