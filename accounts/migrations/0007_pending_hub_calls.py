"""One queue of calls to the hub: the pending removals become calls of kind "remove" (kept as they are), next
to the new kinds "sync" (make or update a hub user before its first login) and "start" (a server at login)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_second_factor_and_shared_pc"),
    ]

    operations = [
        migrations.RenameModel(old_name="PendingHubRemoval", new_name="PendingHubCall"),
        migrations.AlterModelOptions(
            name="pendinghubcall",
            options={
                "ordering": ["requested_at"],
                "verbose_name": "pending hub call",
                "verbose_name_plural": "pending hub calls",
            },
        ),
        migrations.AddField(
            model_name="pendinghubcall",
            name="kind",
            field=models.CharField(
                choices=[
                    ("remove", "remove hub user"),
                    ("sync", "create or update hub user"),
                    ("start", "start server"),
                ],
                default="remove",
                max_length=8,
                verbose_name="call",
            ),
        ),
        migrations.AlterField(
            model_name="pendinghubcall",
            name="username",
            field=models.CharField(max_length=150, verbose_name="hub username"),
        ),
        migrations.AddConstraint(
            model_name="pendinghubcall",
            constraint=models.UniqueConstraint(fields=("username", "kind"), name="one_pending_hub_call_per_kind"),
        ),
    ]
