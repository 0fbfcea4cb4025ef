"""Who opened which protected record, from where: written for every look, refusals included."""

import pytest
from django.urls import reverse

from accounts.models import AccessKind, AccessLog
from tests.factories import CaseFactory


@pytest.mark.django_db
def test_opening_a_case_is_logged_with_who_when_and_from_where(client_for, staff):
    case = CaseFactory(size=2)
    client_for("Staff").get(reverse("cases:detail", args=[case.pk]), REMOTE_ADDR="192.0.2.7")
    entry = AccessLog.objects.get()
    assert (entry.user, entry.kind, entry.view_name, entry.object_id, entry.address, entry.status_code) == (
        staff,
        AccessKind.VIEW,
        "cases:detail",
        str(case.pk),
        "192.0.2.7",
        200,
    )


@pytest.mark.django_db
def test_opening_a_person_is_logged(client_for):
    person = CaseFactory(size=1).members.get()
    client_for("Supervisor").get(reverse("cases:person", args=[person.pk]))
    assert AccessLog.objects.get().object_id == str(person.pk)


@pytest.mark.django_db
def test_a_refused_look_is_logged_as_refused(client_for, nobody):
    from django.test import Client

    case = CaseFactory(size=1)
    client = Client()
    client.force_login(nobody)
    assert client.get(reverse("cases:detail", args=[case.pk])).status_code == 403
    client.get(reverse("cases:detail", args=[999999]))
    assert list(AccessLog.objects.order_by("pk").values_list("kind", "status_code")) == [
        (AccessKind.REFUSED, 403),
        (AccessKind.REFUSED, 403),
    ]


@pytest.mark.django_db
def test_lists_are_not_logged_row_by_row(client_for):
    CaseFactory(size=1)
    client_for("Staff").get(reverse("cases:list"))
    assert not AccessLog.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "status"), [("Staff", 403), ("Supervisor", 403), ("Administrator", 200)])
def test_only_administrators_read_the_access_log_and_nobody_edits_it(client_for, role, status):
    client = client_for(role)
    assert client.get(reverse("admin:accounts_accesslog_changelist")).status_code == status
    entry = AccessLog.objects.create(kind="view", view_name="cases:detail", path="/cases/1/", status_code=200)
    page = client.get(reverse("admin:accounts_accesslog_change", args=[entry.pk]))
    if status == 200:
        assert 'name="kind"' not in page.text  # shown, not editable
    assert client.post(reverse("admin:accounts_accesslog_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert AccessLog.objects.filter(pk=entry.pk).exists()
