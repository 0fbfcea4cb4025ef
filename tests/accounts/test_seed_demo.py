import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.management.commands.seed_demo import BIRTHS_AS_OF
from cases.demo import roster
from cases.models import Case, CaseStatus, CaseStatusChange, Incident, Interview, InterviewOutcome, Person
from offers.models import Departure, DepartureStatus, Nomination, Offer


def counts():
    return [
        m.objects.count() for m in (Person, Case, CaseStatusChange, Interview, Incident, Offer, Nomination, Departure)
    ]


@pytest.fixture
def seeded(db, monkeypatch, capsys):
    monkeypatch.setenv("DEMO_PASSWORD", "a-demo-password-for-tests")
    call_command("seed_demo", persons=900, seed=3)
    return capsys.readouterr().out


def test_it_loads_a_realistic_camp(seeded):
    assert Person.objects.count() == 900
    assert set(Case.objects.values_list("status", flat=True)) == set(CaseStatus.values)
    assert Person.objects.filter(birth_date__isnull=True).exists()  # year-only births
    assert Person.objects.exclude(native_name="").filter(native_name__regex=r"[\u0600-\u06FF]").exists()
    assert Offer.objects.filter(places=210).exists()
    assert Departure.objects.filter(status=DepartureStatus.DEPARTED).count() == 1
    assert Person.objects.filter(residence_status="deceased").count() == 1
    assert Interview.objects.filter(outcome=InterviewOutcome.NO_SHOW).exists()
    assert Interview.objects.filter(outcome=InterviewOutcome.REFUSED).exists()


def test_it_creates_the_demo_users_and_prints_their_logins(seeded):
    for username in ("admin", "supervisor", "staff"):
        assert get_user_model().objects.get(username=username).check_password("a-demo-password-for-tests")
        assert username in seeded


def test_running_it_twice_adds_nothing(seeded, capsys):
    before = counts()
    call_command("seed_demo", persons=900, seed=3)
    assert counts() == before
    assert "already loaded" in capsys.readouterr().out


def test_it_is_the_same_roster_for_the_same_seed(db, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "a-demo-password-for-tests")
    call_command("seed_demo", persons=300, seed=5)
    loaded = list(Person.objects.order_by("registration_no").values_list("registration_no", "given_name", "birth_year"))
    again = [(p.registration_no, p.given_name, p.birth_year) for p in roster(300, 5, BIRTHS_AS_OF)]
    assert loaded == again
    assert roster(300, 6, BIRTHS_AS_OF) != roster(300, 5, BIRTHS_AS_OF)


def test_with_if_empty_it_leaves_a_real_roster_alone(seeded, capsys):
    call_command("seed_demo", persons=300, seed=9, if_empty=True)
    assert Person.objects.count() == 900
    assert "not loaded" in capsys.readouterr().out
