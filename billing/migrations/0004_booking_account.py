"""The account a booking is charged to becomes billing's own row (``BookingAccount``).

Until now it was a column of the booking (``bookings_booking.account_id``), a foreign key from
bookings up to billing. A database of before keeps every link: they are copied here, then that
column is dropped (by billing, whose column it was in all but name).
"""

import django.db.models.deletion
from django.db import migrations, models


def _has_old_column(schema_editor) -> bool:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if "bookings_booking" not in connection.introspection.table_names(cursor):
            return False
        columns = connection.introspection.get_table_description(cursor, "bookings_booking")
    return any(column.name == "account_id" for column in columns)


def copy_links_and_drop_the_column(apps, schema_editor):
    if not _has_old_column(schema_editor):
        return   # a database made after the split never had it
    schema_editor.execute("INSERT INTO billing_bookingaccount (booking_id, account_id) "
                          "SELECT id, account_id FROM bookings_booking WHERE account_id IS NOT NULL")
    if schema_editor.connection.vendor == "sqlite":
        # SQLite cannot drop a foreign-key column in place: rebuild the table from the model as it is
        # now (without the column), as Django does for any such change there.
        schema_editor._remake_table(apps.get_model("bookings", "Booking"))
    else:
        schema_editor.execute("ALTER TABLE bookings_booking DROP COLUMN account_id")


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0003_charge_item'),
        ('bookings', '0001_squashed_0006_lean_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='BookingAccount',
            fields=[
                ('booking', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='billing_account', serialize=False, to='bookings.booking')),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='booking_links', to='billing.billingaccount')),
            ],
            options={
                'verbose_name': 'account of a booking',
                'verbose_name_plural': 'accounts of bookings',
            },
        ),
        migrations.RunPython(copy_links_and_drop_the_column, migrations.RunPython.noop),
    ]
