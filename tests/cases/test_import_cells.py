"""What a roster's cells may hold: text garbled by a wrong encoding, characters an encoding
lost, invisible and control characters, numbers a spreadsheet changed; and the XLSX
template that keeps typed values as they were typed."""

import io
import unicodedata

import openpyxl
import pytest

from cases import importing
from cases.importing import COLUMNS
from cases.models import Person, Relationship, Sex
from tests.cases.test_import import csv_bytes, errors_seen, family, needs, person_row, run, site  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

RE_ENCODED = (
    "The file's text looks wrongly re-encoded: it was opened with the wrong encoding and saved again."
    " Import the original file, or open it in a spreadsheet as UTF-8 (Data > From Text/CSV, File origin"
    " “65001: Unicode (UTF-8)”) and save it as “CSV UTF-8”."
)


def seen(result) -> list[tuple[int | None, str, str]]:
    """errors_seen, of a file that wrote nothing."""
    assert not Person.objects.exists()
    return errors_seen(result)


def mojibake(text: str) -> str:
    """`text` as UTF-8 read as Windows-1252: what opening a UTF-8 CSV as ANSI and saving it gives."""
    return text.encode().decode("cp1252", errors="replace")


@pytest.mark.parametrize(
    ("column", "value", "meant"),
    [
        ("family_name", "MÃ¼ller", "Müller"),
        ("given_name", "JosÃ©", "José"),
        ("native_name", mojibake("محمد"), "محمد"),
        ("notes", mojibake("café note"), "café note"),
        ("nationality", "CÃ´te d'Ivoire", "Côte d'Ivoire"),
        ("given_name", "JoÃƒÂ£o", "João"),  # re-encoded twice
    ],
)
def test_text_garbled_by_a_wrong_re_encoding_is_refused_on_its_line_and_column(column, value, meant):
    rows = family()
    rows[1][column] = value

    result = run(csv_bytes(rows))

    assert seen(result) == [(3, column, f"“{value}” (perhaps “{meant}”): {RE_ENCODED}")]


def test_garbled_text_is_refused_in_an_xlsx_too():
    rows = [list(COLUMNS)] + [[row[column] for column in COLUMNS] for row in family()]
    rows[2][COLUMNS.index("family_name")] = "HÃ¶ss"
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)

    result = run(out.getvalue(), filename="roster.xlsx")

    assert seen(result) == [(3, "family_name", f"“HÃ¶ss” (perhaps “Höss”): {RE_ENCODED}")]


@pytest.mark.parametrize("column", ["family_name", "native_name", "phone"])
def test_a_replacement_character_is_refused_as_text_lost_to_a_wrong_encoding(column):
    rows = family()
    rows[1][column] = "M\ufffdller" if column == "family_name" else "\ufffd\ufffd\ufffd"

    result = run(csv_bytes(rows))

    assert seen(result) == [
        (
            3,
            column,
            "Holds the character � (U+FFFD), which stands for characters lost when the file was read with the wrong"
            " encoding and saved again: the text cannot be told from it. Import the original file, or save it again"
            " from its spreadsheet as “CSV UTF-8”.",
        )
    ]


REAL_NAMES = [
    # Portuguese, Spanish, French, German, Nordic
    ("JOÃO", "Conceição"),
    ("Ãlvaro", "Gonçalves"),
    ("Sebastião", "Magalhães"),
    ("Ângela", "Antônio"),
    ("Íñigo", "Núñez"),
    ("Françoise", "Lefèvre"),
    ("Jürgen", "Groß"),
    ("Søren", "Kierkegård"),
    ("Ægir", "Þórsdóttir"),
    # Vietnamese
    ("Nguyễn", "Thị Ánh"),
    ("Trần", "Đức Thắng"),
    ("Phạm", "Ngọc Ẩn"),
    # Turkish
    ("Çağlar", "Şükrü"),
    ("Öztürk", "İbrahim"),
    ("Yılmaz", "Ağaoğlu"),
    # Polish, Czech, Romanian
    ("Łukasz", "Wróblewski"),
    ("Źdźbło", "Żaneta"),
    ("Dvořák", "Jiří"),
    ("Ștefănescu", "Ioana"),
    # Hungarian, Icelandic
    ("Erdős", "Pál"),
]


def test_real_names_with_accents_are_not_taken_for_garbled_text():
    rows = []
    for at, (family_name, given_name) in enumerate(REAL_NAMES, start=1):
        rows.append(
            person_row(
                registration_no=f"R-{at}",
                case_no=f"C-{at}",
                family_name=family_name,
                given_name=given_name,
                native_name="",
                notes="Ãâ: née à Zürich, 30°, ½ day, São Tomé",
            )
        )

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert sorted(Person.objects.values_list("family_name", flat=True)) == sorted(name for name, _ in REAL_NAMES)


@pytest.mark.parametrize(
    ("column", "value", "stored"),
    [
        # A capital accented letter then a non-breaking space, ’, – or °: as bytes, the
        # UTF-8 of a phonetic letter; as text, what was typed.
        ("given_name", "JOSÉ\u00a0LUIS", "JOSÉ LUIS"),
        ("given_name", "RENÉ\u00a0PAUL", "RENÉ PAUL"),
        ("given_name", "JOSÉ–MARIA", "JOSÉ–MARIA"),
        ("family_name", "ANDRÉ’S", "ANDRÉ’S"),
        ("notes", "TEMPÉ°", "TEMPÉ°"),
        ("given_name", "ALÍ\u00a0HASAN", "ALÍ HASAN"),
        ("given_name", "ABÚ’L FAZL", "ABÚ’L FAZL"),
    ],
)
def test_capitals_with_accents_before_a_space_or_a_sign_are_not_taken_for_garbled_text(column, value, stored):
    result = run(csv_bytes([person_row(**{column: value})]))

    assert result.ok, result.report_lines()
    assert getattr(Person.objects.get(), column) == stored


@pytest.mark.parametrize("value", ["?", "??"])
def test_a_name_of_question_marks_alone_is_refused_as_no_name_saying_what_to_write(value):
    # (A placeholder for a name not known, or a name whose letters all were lost.)
    result = run(csv_bytes([person_row(given_name=value)]))

    assert seen(result) == [
        (
            2,
            "given_name",
            f"“{value}” is no name. If the name is not known, write what your registration writes for an unknown"
            " name (FNU: first name unknown, LNU: last name unknown); if its letters were lost when the file was"
            " saved, save the roster again from the original as “CSV UTF-8”.",
        )
    ]
    assert not Person.objects.exists()


def test_a_vertical_tab_in_a_name_is_a_space_as_some_exports_break_lines_with_it():
    result = run(csv_bytes([person_row(given_name="Mohammad\x0bAli")]))

    assert result.ok, result.report_lines()
    assert Person.objects.get().given_name == "Mohammad Ali"


LOST = (
    "Holds “?” where letters were: the file was saved in an encoding that cannot hold them (Excel's"
    " “CSV (Comma delimited)” or LibreOffice's Western Europe), and they were lost. Save the roster again"
    " from the original as “CSV UTF-8”, and import that file."
)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("family_name", "Hosseini?"),
        ("given_name", "Mo?ammad"),
        ("native_name", "????? ?????"),
        ("native_name", "محمد ??"),
    ],
)
def test_question_marks_left_by_a_windows_1252_save_are_refused(column, value):
    rows = family()
    rows[1][column] = value

    result = run(csv_bytes(rows))

    assert seen(result) == [(3, column, LOST)]


def test_a_re_import_saved_as_windows_1252_does_not_overwrite_the_native_names_on_record():
    assert run(csv_bytes(family())).ok
    rows = family()
    rows[0]["native_name"] = "???? ??????"

    result = run(csv_bytes(rows))

    assert [(error.line, error.column, error.message) for error in result.errors] == [(2, "native_name", LOST)]
    assert Person.objects.get(registration_no="R-1").native_name == "محمد حسینی"


def test_a_question_mark_within_a_native_name_or_in_notes_is_kept():
    rows = family()
    rows[1]["native_name"] = "زهرا (?)حسینی"
    rows[1]["notes"] = "Moved? ??? ask"

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert Person.objects.values_list("native_name", "notes").get(registration_no="R-2") == (
        "زهرا (?)حسینی",
        "Moved? ??? ask",
    )


def test_invisible_characters_and_odd_spaces_in_names_are_left_out():
    rows = family()
    rows[0]["family_name"] = "Hosseini\u200b"
    rows[0]["given_name"] = "Abdul\u00a0 Rahman\u200f"
    rows[1]["native_name"] = "\u200fزهرا\u00a0\u00a0حسینی\u200e"
    rows[2]["native_name"] = "علی\u200cرضا"  # a zero-width non-joiner belongs to Persian spelling

    result = run(csv_bytes(rows))

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="R-1").family_name == "Hosseini"
    assert Person.objects.get(registration_no="R-1").given_name == "Abdul Rahman"
    assert Person.objects.get(registration_no="R-2").native_name == "زهرا حسینی"
    assert Person.objects.get(registration_no="R-3").native_name == "علی\u200cرضا"


@pytest.mark.parametrize(
    ("column", "value"), [("family_name", "Kar\x07imi"), ("given_name", "Ali\x1b"), ("native_name", "علی\x7f")]
)
def test_a_control_character_in_a_name_is_refused_on_its_line_and_column(column, value):
    rows = family()
    rows[1][column] = value

    result = run(csv_bytes(rows))

    # Named, not written: no control character in the message.
    control = next(char for char in value if unicodedata.category(char) == "Cc")
    assert seen(result) == [
        (
            3,
            column,
            f"Holds a control character (U+{ord(control):04X}), which no name has: it came with text pasted from"
            " elsewhere, or the file is damaged. Type the name again.",
        )
    ]


def test_a_final_dos_end_of_file_character_ends_the_file():
    content = csv_bytes(family()) + b"\x1a"

    result = run(content)

    assert result.ok, result.report_lines()
    assert result.rows == 3


def test_an_encrypted_workbook_is_refused_as_password_protected():
    # An encrypted OOXML file is an OLE compound file holding these streams.
    content = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "EncryptionInfo".encode("utf-16-le") + bytes(10)
    content += "EncryptedPackage".encode("utf-16-le") + bytes(100)

    result = run(content, filename="roster.xlsx")

    [(line, column, message)] = seen(result)
    assert (line, column) == (None, "")
    assert message.startswith("The workbook is password-protected or encrypted (rights-protected)")
    assert "save an unprotected copy" in message


SCIENTIFIC = (
    "Excel has shown this number in scientific notation and dropped its last digits: format the column as Text"
    " in the spreadsheet and type the numbers again."
)


def sheet(rows: list[dict[str, object]]) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(list(COLUMNS))
    for row in rows:
        book.active.append([row[column] for column in COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("column", ["registration_no", "case_no", "phone"])
@pytest.mark.parametrize("number", [1.23456789012346e17, 1e15, 9876543210987654])
def test_an_xlsx_number_too_long_for_its_digits_to_hold_is_refused_on_its_line_and_column(column, number):
    rows: list[dict[str, object]] = list(family())
    rows[1][column] = number
    if column == "case_no":
        rows = rows[1:2]
        rows[0]["relationship"] = "PA"

    result = run(sheet(rows), filename="roster.xlsx")

    line = 2 if column == "case_no" else 3
    assert seen(result) == [(line, column, SCIENTIFIC)]


def test_an_xlsx_number_of_up_to_15_digits_is_read_whole():
    rows: list[dict[str, object]] = list(family())
    rows[1]["registration_no"] = 123456789012345
    rows[1]["phone"] = 9647501234567

    result = run(sheet(rows), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert Person.objects.get(registration_no="123456789012345").phone == "9647501234567"


# The template ---------------------------------------------------------------------------


def template() -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(importing.template_xlsx()))


def test_the_xlsx_template_formats_every_column_as_text_and_freezes_its_header():
    book = template()
    sheet = book.worksheets[0]

    assert [cell.value for cell in sheet[1]] == list(COLUMNS)
    assert sheet.freeze_panes == "A2"
    for letter in (openpyxl.utils.get_column_letter(at) for at in range(1, len(COLUMNS) + 1)):
        assert sheet.column_dimensions[letter].number_format == "@", letter
        assert sheet.column_dimensions[letter].width >= 10
        assert sheet[f"{letter}2"].number_format == "@"


def test_the_xlsx_template_offers_the_codes_the_import_reads():
    sheet = template().worksheets[0]
    rules = {str(rule.sqref): rule for rule in sheet.data_validations.dataValidation}

    def column(name: str) -> str:
        return openpyxl.utils.get_column_letter(COLUMNS.index(name) + 1)

    sex = rules[f"{column('sex')}2:{column('sex')}5001"]
    assert (sex.type, sex.formula1) == ("list", '"' + ",".join(Sex.values) + '"')
    relationship = rules[f"{column('relationship')}2:{column('relationship')}5001"]
    assert (relationship.type, relationship.formula1) == ("list", '"' + ",".join(Relationship.values) + '"')
    needs_rule = rules[f"{column('specific_needs')}2:{column('specific_needs')}5001"]
    assert needs_rule.showInputMessage
    assert "disability" in needs_rule.prompt and "medical_condition" in needs_rule.prompt
    assert len(needs_rule.prompt) <= 255


def test_a_template_filled_in_as_excel_stores_typed_values_imports_them_as_typed():
    book = template()
    sheet = book.worksheets[0]
    sheet.delete_rows(2)
    # Typed into Text cells, Excel stores every value as the text typed.
    for at, row in enumerate(family(), start=2):
        row.update(registration_no=f"00{at}", case_no="00123", phone="+964 750 123 4567")
        for number, column in enumerate(COLUMNS, start=1):
            cell = sheet.cell(row=at, column=number, value=row[column])
            cell.number_format = "@"
    sheet.cell(row=2, column=COLUMNS.index("registration_no") + 1, value="123456789012345678")
    out = io.BytesIO()
    book.save(out)

    result = run(out.getvalue(), filename="roster.xlsx")

    assert result.ok, result.report_lines()
    assert sorted(Person.objects.values_list("registration_no", "case__case_no", "phone")) == [
        ("003", "00123", "+964 750 123 4567"),
        ("004", "00123", "+964 750 123 4567"),
        ("123456789012345678", "00123", "+964 750 123 4567"),
    ]
