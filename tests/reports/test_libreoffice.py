"""An exported XLSX opens in a real spreadsheet program: LibreOffice headless reads it
and writes it back as CSV, and the values are what we wrote (formulas inert)."""

import csv
import datetime
import io
import os
import shutil
import subprocess

import pytest
from django.urls import reverse

from cases.models import Person
from tests.factories import CaseFactory

pytestmark = pytest.mark.libreoffice


@pytest.fixture
def soffice():
    path = shutil.which("soffice")
    if path is None:
        if os.environ.get("REQUIRE_LIBREOFFICE"):
            pytest.fail("soffice not found; CI must run the LibreOffice check (Debian's libreoffice-calc)")
        pytest.skip("soffice not found (Debian's libreoffice-calc package provides it)")
    return path


def _to_csv(soffice: str, xlsx: bytes, folder) -> list[list[str]]:
    source = folder / "export.xlsx"
    source.write_bytes(xlsx)
    # Its own profile folder, so that it never waits on another LibreOffice running here.
    profile = (folder / "profile").as_uri()
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1",  # comma, double quote, UTF-8, from row 1
            "--outdir",
            str(folder),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return list(csv.reader(io.StringIO((folder / "export.csv").read_text(encoding="utf-8-sig"))))


@pytest.mark.django_db
def test_an_exported_xlsx_opens_in_libreoffice_with_its_values(client_for, soffice, tmp_path):
    case = CaseFactory(size=2)
    pa, child = case.members.order_by("pk")
    Person.objects.filter(pk=pa.pk).update(
        family_name="=1+1", native_name="محمد حسینی", birth_date=datetime.date(1980, 5, 17), phone="+98 912"
    )
    Person.objects.filter(pk=child.pk).update(family_name=" @SUM(A1)", birth_year=2015, birth_date=None)
    response = client_for("Supervisor").get(
        reverse("reports:export", kwargs={"list_name": "persons", "fmt": "xlsx"}), {"sensitive": "1"}
    )
    header, *rows = _to_csv(soffice, b"".join(response.streaming_content), tmp_path)
    by_no = {row[header.index("registration_no")]: dict(zip(header, row, strict=True)) for row in rows}
    first, second = by_no[pa.registration_no], by_no[child.registration_no]
    assert first["family_name"] == "'=1+1"  # text, not the formula's result 2
    assert second["family_name"] == "' @SUM(A1)"
    assert first["phone"] == "'+98 912"
    assert first["native_name"] == "محمد حسینی"
    assert first["date_of_birth"] == "1980-05-17"
    assert second["date_of_birth"] == "2015"
    assert first["case_no"] == case.case_no
