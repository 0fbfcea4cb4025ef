from django.db import migrations

# The vulnerability codes accepted in rosters (specific_needs column).
NEEDS = [
    ("medical_condition", "Medical condition"),
    ("serious_medical_condition", "Serious medical condition"),
    ("disability", "Disability"),
    ("mental_health", "Mental health condition"),
    ("older_person_at_risk", "Older person at risk"),
    ("unaccompanied_child", "Unaccompanied child"),
    ("separated_child", "Separated child"),
    ("single_parent", "Single parent or caregiver"),
    ("woman_at_risk", "Woman at risk"),
    ("survivor_of_violence", "Survivor of violence"),
    ("survivor_of_torture", "Survivor of torture"),
    ("pregnant_or_lactating", "Pregnant or lactating"),
    ("legal_protection_needs", "Legal and physical protection needs"),
]


def add_needs(apps, schema_editor):
    SpecificNeed = apps.get_model("cases", "SpecificNeed")
    for code, label in NEEDS:
        SpecificNeed.objects.get_or_create(code=code, defaults={"label": label})


class Migration(migrations.Migration):
    dependencies = [("cases", "0001_initial")]
    operations = [migrations.RunPython(add_needs, migrations.RunPython.noop)]
