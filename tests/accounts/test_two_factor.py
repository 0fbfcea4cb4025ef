"""Administrators confirm a one-time code after their password (when REQUIRE_ADMIN_2FA)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice


@pytest.fixture(autouse=True)
def _require_2fa(settings):
    settings.REQUIRE_ADMIN_2FA = True


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift):06d}"


@pytest.mark.django_db
def test_an_administrator_without_an_authenticator_is_sent_to_enrol(client_for):
    response = client_for("Administrator").get(reverse("cases:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("two_factor_setup"))


@pytest.mark.django_db
def test_enrolling_shows_a_qr_code_and_a_right_code_lets_the_administrator_in(client_for, administrator):
    client = client_for("Administrator")
    page = client.get(reverse("two_factor_setup"), {"next": "/cases/"})
    assert "<svg" in page.text
    device = TOTPDevice.objects.get(user=administrator)
    assert not device.confirmed
    response = client.post(reverse("two_factor_setup"), {"token": code_for(device), "next": "/cases/"})
    assert response["Location"] == "/cases/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(reverse("cases:list")).status_code == 200


@pytest.mark.django_db
def test_a_wrong_code_is_refused_and_the_enrolment_stays_unconfirmed(client_for, administrator):
    client = client_for("Administrator")
    client.get(reverse("two_factor_setup"))
    response = client.post(reverse("two_factor_setup"), {"token": "000000"})
    assert "That code is not right" in response.text
    assert not TOTPDevice.objects.get(user=administrator).confirmed
    assert client.get(reverse("cases:list")).status_code == 302


@pytest.mark.django_db
def test_an_enrolled_administrator_confirms_a_code_at_each_new_login(client_for, administrator):
    device = TOTPDevice.objects.create(user=administrator, name="phone", confirmed=True)
    client = client_for("Administrator")
    response = client.get(reverse("admin:index"))
    assert response["Location"].startswith(reverse("two_factor_verify"))
    assert "That code is not right" in client.post(reverse("two_factor_verify"), {"token": "123"}).text
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # wrong codes slow further tries down
    device.throttle_reset()  # as if the throttling delay had passed
    client.post(reverse("two_factor_verify"), {"token": code_for(device)})
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["Staff", "Supervisor"])
def test_other_roles_are_not_asked_for_a_second_factor(client_for, role):
    assert client_for(role).get(reverse("cases:list")).status_code == 200


@pytest.mark.django_db
def test_the_check_costs_a_page_no_query_of_its_own(client_for, settings):
    # The role it asks for is the one the page's header shows: read once a request.
    client = client_for("Staff")
    client.get(reverse("offers:list"))
    with CaptureQueriesContext(connection) as checked:
        assert client.get(reverse("offers:list")).status_code == 200
    settings.REQUIRE_ADMIN_2FA = False
    with CaptureQueriesContext(connection) as unchecked:
        client.get(reverse("offers:list"))
    assert len(checked) == len(unchecked)


@pytest.mark.django_db
def test_with_the_setting_off_administrators_are_not_asked(client_for, settings):
    settings.REQUIRE_ADMIN_2FA = False
    assert client_for("Administrator").get(reverse("cases:list")).status_code == 200


def test_production_settings_require_it_by_default():
    import subprocess
    import sys

    from tests.accounts.test_settings import ROOT

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.REQUIRE_ADMIN_2FA)",
        ],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "relocation.settings",
            "DEBUG": "false",
            "SECRET_KEY": "k" * 50,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "True"
