from django.db import migrations


def create_roles(apps, schema_editor):
    from accounts.roles import sync_roles

    sync_roles(apps, strict=False)


class Migration(migrations.Migration):
    """The Staff, Supervisor and Administrator groups with their permissions."""

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("cases", "0002_specific_needs"),
        ("offers", "0001_initial"),
        ("reports", "0001_initial"),
    ]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
