"""Billing's tables, but for the charge's billable item (0003 adds it, from the usage app).

Replaces the first two migrations, whose charges pointed at billable items in the bookings app. A
database that applied them takes this one as applied; usage's 0001 then moves the items' table into
the usage app, and 0003 states the charge's link to it (the column is there already).
"""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    replaces = [("billing", "0001_initial"), ("billing", "0002_warn_label")]

    dependencies = [
        ('accounts', '0001_initial'),
        ('catalog', '0004_percent_labels'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Invoice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('invoice', 'Invoice'), ('credit_note', 'Credit note')], default='invoice', max_length=12)),
                ('period', models.CharField(max_length=7, validators=[django.core.validators.RegexValidator('^\\d{4}-(0[1-9]|1[0-2])$', 'A period is a month written YYYY-MM.')])),
                ('year', models.PositiveSmallIntegerField()),
                ('sequence', models.PositiveIntegerField()),
                ('number', models.CharField(max_length=40)),
                ('reason', models.CharField(blank=True, max_length=500)),
                ('currency', models.CharField(default='CNY', max_length=3)),
                ('subtotal', models.DecimalField(decimal_places=2, max_digits=13)),
                ('voucher_amount', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=13)),
                ('amount_due', models.DecimalField(decimal_places=2, max_digits=13)),
                ('amount_paid', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=13)),
                ('credited_amount', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=13)),
                ('state', models.CharField(choices=[('issued', 'Issued'), ('paid', 'Paid'), ('credited', 'Credited')], default='issued', max_length=10)),
                ('issuer_name', models.CharField(max_length=200)),
                ('issuer_address', models.CharField(blank=True, max_length=300)),
                ('issuer_tax_number', models.CharField(blank=True, max_length=40)),
                ('payer_name', models.CharField(max_length=200)),
                ('payer_address', models.CharField(blank=True, max_length=300)),
                ('payer_tax_number', models.CharField(blank=True, max_length=40)),
                ('payer_contact', models.CharField(blank=True, max_length=100)),
                ('payer_email', models.CharField(blank=True, max_length=254)),
                ('account_number', models.CharField(max_length=60)),
                ('account_name', models.CharField(max_length=200)),
                ('funding_programme', models.CharField(blank=True, max_length=200)),
                ('issued_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('paid_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['-issued_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='InvoiceLine',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveSmallIntegerField()),
                ('description', models.CharField(max_length=300)),
                ('hours', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=12)),
                ('samples', models.PositiveIntegerField(default=0)),
                ('uses', models.PositiveIntegerField(default=0)),
                ('charge_count', models.PositiveIntegerField(default=0)),
                ('amount', models.DecimalField(decimal_places=2, max_digits=13)),
                ('voucher_amount', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=13)),
            ],
            options={
                'ordering': ['invoice_id', 'position'],
            },
        ),
        migrations.CreateModel(
            name='InvoiceSequence',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('year', models.PositiveSmallIntegerField()),
                ('series', models.CharField(max_length=4)),
                ('last', models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='Payment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('method', models.CharField(choices=[('stripe', 'Online (Stripe)'), ('transfer', 'Bank transfer')], max_length=10)),
                ('amount', models.DecimalField(decimal_places=2, max_digits=13)),
                ('currency', models.CharField(default='CNY', max_length=3)),
                ('state', models.CharField(choices=[('creating', 'Being created'), ('pending', 'Awaiting payment'), ('processing', 'Processing'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('canceled', 'Canceled')], default='creating', max_length=10)),
                ('idempotency_key', models.CharField(max_length=80, unique=True)),
                ('stripe_payment_intent', models.CharField(blank=True, max_length=100, null=True, unique=True)),
                ('client_secret', models.CharField(blank=True, max_length=200)),
                ('reference', models.CharField(blank=True, max_length=200)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('succeeded_at', models.DateTimeField(blank=True, null=True)),
                ('last_event_at', models.DateTimeField(blank=True, null=True)),
                ('failure_message', models.CharField(blank=True, max_length=300)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='Rate',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('user_class', models.CharField(choices=[('internal', 'Internal'), ('academic', 'Other academic'), ('industry', 'Industry')], max_length=10, verbose_name='user class')),
                ('unit', models.CharField(choices=[('hour', 'hour'), ('sample', 'sample'), ('use', 'use')], max_length=8, verbose_name='unit')),
                ('price', models.DecimalField(decimal_places=2, max_digits=13, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='price per unit')),
            ],
            options={
                'ordering': ['card_id', 'unit', 'user_class'],
            },
        ),
        migrations.CreateModel(
            name='RateCard',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('valid_from', models.DateField(verbose_name='valid from')),
                ('currency', models.CharField(default='CNY', max_length=3, verbose_name='currency')),
                ('minimum_charge', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=13, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='minimum charge')),
                ('assisted_surcharge', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=13, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='assisted-operation surcharge per unit')),
                ('note', models.CharField(blank=True, max_length=300, verbose_name='note')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
            ],
            options={
                'verbose_name': 'rate card',
                'verbose_name_plural': 'rate cards',
                'ordering': ['instrument_id', '-valid_from'],
            },
        ),
        migrations.CreateModel(
            name='Refund',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('amount', models.DecimalField(decimal_places=2, max_digits=13)),
                ('currency', models.CharField(default='CNY', max_length=3)),
                ('state', models.CharField(choices=[('creating', 'Being created'), ('pending', 'Pending'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='creating', max_length=10)),
                ('idempotency_key', models.CharField(max_length=80, unique=True)),
                ('stripe_refund', models.CharField(blank=True, max_length=100, null=True, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('succeeded_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='RelatedParty',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('note', models.CharField(blank=True, max_length=300)),
            ],
        ),
        migrations.CreateModel(
            name='StripeEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_id', models.CharField(max_length=100, unique=True)),
                ('type', models.CharField(max_length=100)),
                ('created', models.DateTimeField(help_text='When Stripe says the event happened.')),
                ('object_id', models.CharField(blank=True, max_length=100)),
                ('payload', models.JSONField()),
                ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('outcome', models.CharField(blank=True, max_length=200)),
            ],
            options={
                'ordering': ['-received_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='SubsidyPolicy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('year', models.PositiveSmallIntegerField(unique=True)),
                ('provider_share_percent', models.DecimalField(decimal_places=2, default=Decimal('20'), max_digits=5)),
                ('provider_cap', models.DecimalField(decimal_places=2, default=Decimal('1000000'), max_digits=13)),
                ('enterprise_share_percent', models.DecimalField(decimal_places=2, default=Decimal('10'), max_digits=5)),
                ('designated_share_percent', models.DecimalField(decimal_places=2, default=Decimal('20'), max_digits=5)),
                ('enterprise_cap', models.DecimalField(decimal_places=2, default=Decimal('200000'), max_digits=13)),
                ('exclude_voucher_share', models.BooleanField(default=True, help_text='Fees already paid by innovation vouchers are not rewarded again.')),
            ],
            options={
                'ordering': ['-year'],
            },
        ),
        migrations.CreateModel(
            name='Voucher',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.CharField(max_length=40, unique=True, verbose_name='number')),
                ('amount', models.DecimalField(decimal_places=2, max_digits=13, validators=[django.core.validators.MinValueValidator(Decimal('0.01'))], verbose_name='amount')),
                ('share_percent', models.DecimalField(decimal_places=2, max_digits=5, validators=[django.core.validators.MinValueValidator(Decimal('0.01')), django.core.validators.MaxValueValidator(Decimal('100'))], verbose_name='share of a fee (%)')),
                ('yearly_cap', models.DecimalField(blank=True, decimal_places=2, max_digits=13, null=True, verbose_name='yearly cap per company')),
                ('valid_from', models.DateField(verbose_name='valid from')),
                ('valid_until', models.DateField(verbose_name='valid until')),
                ('balance', models.DecimalField(decimal_places=2, max_digits=13)),
                ('state', models.CharField(choices=[('active', 'Active'), ('revoked', 'Revoked')], default='active', max_length=10)),
                ('currency', models.CharField(default='CNY', max_length=3)),
                ('issued_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['valid_until', 'id'],
            },
        ),
        migrations.CreateModel(
            name='VoucherEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('issue', 'Issued'), ('redeem', 'Redeemed'), ('reverse', 'Reversed')], max_length=8)),
                ('amount', models.DecimalField(decimal_places=2, help_text='Signed: what the balance moved by.', max_digits=13)),
                ('balance_after', models.DecimalField(decimal_places=2, max_digits=13)),
                ('year', models.PositiveSmallIntegerField(help_text='The calendar year the yearly cap counts it in.')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['voucher_id', 'id'],
            },
        ),
        migrations.CreateModel(
            name='BillingAccount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('cost_centre', 'Internal cost centre'), ('project', 'Research project'), ('external', 'External payer')], max_length=12, verbose_name='kind')),
                ('number', models.CharField(help_text='Cost centre or project number.', max_length=60, verbose_name='number')),
                ('name', models.CharField(max_length=200, verbose_name='name')),
                ('funding_programme', models.CharField(blank=True, max_length=200, verbose_name='funding programme')),
                ('valid_from', models.DateField(blank=True, null=True, verbose_name='valid from')),
                ('valid_until', models.DateField(blank=True, null=True, verbose_name='valid until')),
                ('budget_cap', models.DecimalField(blank=True, decimal_places=2, max_digits=13, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='budget cap')),
                ('budget_warning_percent', models.PositiveSmallIntegerField(default=80, validators=[django.core.validators.MaxValueValidator(100)], verbose_name='warn at (percent of the cap)')),
                ('billing_name', models.CharField(blank=True, max_length=200, verbose_name='billing name')),
                ('billing_address', models.CharField(blank=True, max_length=300, verbose_name='billing address')),
                ('tax_number', models.CharField(blank=True, max_length=40, verbose_name='tax number')),
                ('contact_name', models.CharField(blank=True, max_length=100, verbose_name='contact')),
                ('contact_email', models.EmailField(blank=True, max_length=254, verbose_name='contact e-mail')),
                ('contact_phone', models.CharField(blank=True, max_length=40, verbose_name='contact phone')),
                ('currency', models.CharField(default='CNY', max_length=3, verbose_name='currency')),
                ('is_active', models.BooleanField(default=True, verbose_name='active')),
                ('stripe_customer_id', models.CharField(blank=True, editable=False, max_length=100)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('lab', models.ForeignKey(blank=True, help_text="For a lab's cost centre.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='billing_accounts', to='accounts.lab', verbose_name='lab')),
                ('organization', models.ForeignKey(help_text='Who pays.', on_delete=django.db.models.deletion.PROTECT, related_name='billing_accounts', to='accounts.organization', verbose_name='organization')),
                ('pi', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='pi_accounts', to=settings.AUTH_USER_MODEL, verbose_name='principal investigator')),
            ],
            options={
                'verbose_name': 'billing account',
                'verbose_name_plural': 'billing accounts',
                'ordering': ['organization__name_zh', 'number'],
            },
        ),
        migrations.CreateModel(
            name='AccountAuthorization',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('pending', 'Awaiting the PI'), ('approved', 'Approved'), ('declined', 'Declined'), ('revoked', 'Revoked')], default='pending', max_length=10)),
                ('requested_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('note', models.CharField(blank=True, max_length=300)),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='account_authorizations', to=settings.AUTH_USER_MODEL)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='authorizations', to='billing.billingaccount')),
            ],
            options={
                'ordering': ['-requested_at'],
            },
        ),
        migrations.CreateModel(
            name='BillingPeriod',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('month', models.CharField(max_length=7, validators=[django.core.validators.RegexValidator('^\\d{4}-(0[1-9]|1[0-2])$', 'A period is a month written YYYY-MM.')], verbose_name='period')),
                ('state', models.CharField(choices=[('open', 'Open'), ('closing', 'Closing'), ('closed', 'Closed'), ('failed', 'Failed')], default='open', max_length=8)),
                ('progress_total', models.PositiveIntegerField(default=0)),
                ('progress_done', models.PositiveIntegerField(default=0)),
                ('charges_created', models.PositiveIntegerField(default=0)),
                ('invoices_issued', models.PositiveIntegerField(default=0)),
                ('unassigned_items', models.PositiveIntegerField(default=0)),
                ('error', models.CharField(blank=True, max_length=500)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('closed_at', models.DateTimeField(blank=True, null=True)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='billing_periods', to='accounts.organization')),
                ('started_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-month', 'organization_id'],
            },
        ),
        migrations.CreateModel(
            name='Charge',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('usage', 'Usage'), ('adjustment', 'Adjustment'), ('waiver', 'Waiver')], default='usage', max_length=12)),
                ('period', models.CharField(max_length=7, validators=[django.core.validators.RegexValidator('^\\d{4}-(0[1-9]|1[0-2])$', 'A period is a month written YYYY-MM.')])),
                ('service_start', models.DateTimeField()),
                ('user_class', models.CharField(blank=True, choices=[('internal', 'Internal'), ('academic', 'Other academic'), ('industry', 'Industry')], max_length=10)),
                ('unit', models.CharField(blank=True, choices=[('hour', 'hour'), ('sample', 'sample'), ('use', 'use')], max_length=8)),
                ('quantity', models.DecimalField(decimal_places=4, default=Decimal('0'), max_digits=12)),
                ('minutes', models.PositiveIntegerField(default=0)),
                ('unit_price', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=13)),
                ('surcharge', models.DecimalField(decimal_places=2, default=Decimal('0'), help_text='Assisted operation, per unit.', max_digits=13)),
                ('minimum_applied', models.BooleanField(default=False)),
                ('amount', models.DecimalField(decimal_places=2, max_digits=13)),
                ('voucher_amount', models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=13)),
                ('currency', models.CharField(default='CNY', max_length=3)),
                ('reason', models.CharField(blank=True, max_length=500)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='charges', to='billing.billingaccount')),
                ('adjusts', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='corrections', to='billing.charge')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='charges', to='catalog.instrument')),
            ],
            options={
                'ordering': ['service_start', 'id'],
            },
        ),
        migrations.AddField(
            model_name='charge',
            name='provider',
            field=models.ForeignKey(help_text='The organization that owns the instrument and issues the invoice.', on_delete=django.db.models.deletion.PROTECT, related_name='provided_charges', to='accounts.organization'),
        ),
        migrations.AddField(
            model_name='charge',
            name='user',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='charges', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='invoice',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='invoices', to='billing.billingaccount'),
        ),
        migrations.AddField(
            model_name='invoice',
            name='credit_for',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='credit_notes', to='billing.invoice'),
        ),
        migrations.AddField(
            model_name='invoice',
            name='issuer',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='issued_invoices', to='accounts.organization'),
        ),
        migrations.AddField(
            model_name='charge',
            name='invoice',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='charges', to='billing.invoice'),
        ),
        migrations.AddField(
            model_name='invoiceline',
            name='instrument',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.instrument'),
        ),
        migrations.AddField(
            model_name='invoiceline',
            name='invoice',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='lines', to='billing.invoice'),
        ),
        migrations.AddField(
            model_name='invoicesequence',
            name='organization',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.organization'),
        ),
        migrations.AddField(
            model_name='payment',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='payment',
            name='invoice',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payments', to='billing.invoice'),
        ),
        migrations.AddField(
            model_name='ratecard',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='ratecard',
            name='instrument',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='rate_cards', to='catalog.instrument'),
        ),
        migrations.AddField(
            model_name='rate',
            name='card',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='rates', to='billing.ratecard'),
        ),
        migrations.AddField(
            model_name='charge',
            name='rate_card',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='charges', to='billing.ratecard'),
        ),
        migrations.AddField(
            model_name='refund',
            name='credit_note',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='refunds', to='billing.invoice'),
        ),
        migrations.AddField(
            model_name='refund',
            name='payment',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='refunds', to='billing.payment'),
        ),
        migrations.AddField(
            model_name='relatedparty',
            name='first',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.organization'),
        ),
        migrations.AddField(
            model_name='relatedparty',
            name='second',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.organization'),
        ),
        migrations.AddField(
            model_name='subsidypolicy',
            name='designated_enterprises',
            field=models.ManyToManyField(blank=True, help_text='Enterprises of designated types (e.g. high-tech SMEs) get the higher share.', related_name='+', to='accounts.organization'),
        ),
        migrations.AddField(
            model_name='subsidypolicy',
            name='excluded_instruments',
            field=models.ManyToManyField(blank=True, related_name='+', to='catalog.instrument'),
        ),
        migrations.AddField(
            model_name='voucher',
            name='company',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='vouchers', to='accounts.organization', verbose_name='company'),
        ),
        migrations.AddField(
            model_name='voucher',
            name='eligible_providers',
            field=models.ManyToManyField(blank=True, help_text='None means every provider.', related_name='+', to='accounts.organization', verbose_name='eligible providers'),
        ),
        migrations.AddField(
            model_name='voucher',
            name='issued_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='voucherentry',
            name='charge',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='voucher_entries', to='billing.charge'),
        ),
        migrations.AddField(
            model_name='voucherentry',
            name='invoice',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='voucher_entries', to='billing.invoice'),
        ),
        migrations.AddField(
            model_name='voucherentry',
            name='voucher',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='billing.voucher'),
        ),
        migrations.AddConstraint(
            model_name='billingaccount',
            constraint=models.UniqueConstraint(fields=('organization', 'number'), name='billing_account_number_per_org'),
        ),
        migrations.AddConstraint(
            model_name='billingaccount',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'cost_centre')), fields=('lab',), name='one_cost_centre_per_lab'),
        ),
        migrations.AddConstraint(
            model_name='billingaccount',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'external')), fields=('organization',), name='one_payer_account_per_org'),
        ),
        migrations.AddConstraint(
            model_name='billingaccount',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('kind', 'cost_centre'), ('lab__isnull', False)), models.Q(('kind', 'cost_centre'), _negated=True), _connector='OR'), name='cost_centre_has_lab'),
        ),
        migrations.AddConstraint(
            model_name='billingaccount',
            constraint=models.CheckConstraint(condition=models.Q(('valid_from__isnull', True), ('valid_until__isnull', True), ('valid_from__lte', models.F('valid_until')), _connector='OR'), name='billing_account_validity_order'),
        ),
        migrations.AddConstraint(
            model_name='accountauthorization',
            constraint=models.UniqueConstraint(fields=('account', 'user'), name='account_authorization_once'),
        ),
        migrations.AddConstraint(
            model_name='billingperiod',
            constraint=models.UniqueConstraint(fields=('organization', 'month'), name='billing_period_once'),
        ),
        migrations.AddIndex(
            model_name='invoice',
            index=models.Index(fields=['account', 'period'], name='billing_inv_account_91e1d5_idx'),
        ),
        migrations.AddIndex(
            model_name='invoice',
            index=models.Index(fields=['issuer', 'period'], name='billing_inv_issuer__fc1317_idx'),
        ),
        migrations.AddConstraint(
            model_name='invoice',
            constraint=models.UniqueConstraint(fields=('issuer', 'year', 'kind', 'sequence'), name='invoice_sequence_unique'),
        ),
        migrations.AddConstraint(
            model_name='invoice',
            constraint=models.UniqueConstraint(fields=('issuer', 'number'), name='invoice_number_unique'),
        ),
        migrations.AddConstraint(
            model_name='invoice',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'invoice')), fields=('issuer', 'account', 'period'), name='one_invoice_per_account_and_period'),
        ),
        migrations.AddConstraint(
            model_name='invoiceline',
            constraint=models.UniqueConstraint(fields=('invoice', 'position'), name='invoice_line_position'),
        ),
        migrations.AddConstraint(
            model_name='invoicesequence',
            constraint=models.UniqueConstraint(fields=('organization', 'year', 'series'), name='invoice_sequence_once'),
        ),
        migrations.AddIndex(
            model_name='payment',
            index=models.Index(fields=['invoice', 'state'], name='billing_pay_invoice_3d8238_idx'),
        ),
        migrations.AddIndex(
            model_name='ratecard',
            index=models.Index(fields=['instrument', 'valid_from'], name='billing_rat_instrum_a41389_idx'),
        ),
        migrations.AddConstraint(
            model_name='ratecard',
            constraint=models.UniqueConstraint(fields=('instrument', 'valid_from'), name='rate_card_once_per_day'),
        ),
        migrations.AddConstraint(
            model_name='rate',
            constraint=models.UniqueConstraint(fields=('card', 'user_class', 'unit'), name='rate_once_per_class_and_unit'),
        ),
        migrations.AddConstraint(
            model_name='rate',
            constraint=models.CheckConstraint(condition=models.Q(('price__gte', 0)), name='rate_not_negative'),
        ),
        migrations.AddIndex(
            model_name='charge',
            index=models.Index(fields=['provider', 'period'], name='billing_cha_provide_287c22_idx'),
        ),
        migrations.AddIndex(
            model_name='charge',
            index=models.Index(fields=['account', 'period'], name='billing_cha_account_ed42b4_idx'),
        ),
        migrations.AddIndex(
            model_name='charge',
            index=models.Index(fields=['period', 'id'], name='billing_cha_period_fc85d4_idx'),
        ),
        migrations.AddIndex(
            model_name='charge',
            index=models.Index(fields=['user', 'service_start'], name='billing_cha_user_id_6528db_idx'),
        ),
        migrations.AddConstraint(
            model_name='charge',
            constraint=models.CheckConstraint(condition=models.Q(('kind', 'usage'), models.Q(('reason', ''), _negated=True), _connector='OR'), name='correction_has_reason'),
        ),
        migrations.AddConstraint(
            model_name='charge',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'waiver')), fields=('adjusts',), name='one_waiver_per_charge'),
        ),
        migrations.AddConstraint(
            model_name='relatedparty',
            constraint=models.UniqueConstraint(fields=('first', 'second'), name='related_party_once'),
        ),
        migrations.AddConstraint(
            model_name='relatedparty',
            constraint=models.CheckConstraint(condition=models.Q(('first__lt', models.F('second'))), name='related_party_ordered'),
        ),
        migrations.AddConstraint(
            model_name='voucher',
            constraint=models.CheckConstraint(condition=models.Q(('balance__gte', 0), ('balance__lte', models.F('amount'))), name='voucher_balance_within_amount'),
        ),
        migrations.AddConstraint(
            model_name='voucher',
            constraint=models.CheckConstraint(condition=models.Q(('valid_from__lte', models.F('valid_until'))), name='voucher_validity_order'),
        ),
        migrations.AddConstraint(
            model_name='voucher',
            constraint=models.CheckConstraint(condition=models.Q(('share_percent__gt', 0), ('share_percent__lte', 100)), name='voucher_share_range'),
        ),
        migrations.AddIndex(
            model_name='voucherentry',
            index=models.Index(fields=['year', 'kind'], name='billing_vou_year_fb3d7e_idx'),
        ),
        migrations.AddConstraint(
            model_name='voucherentry',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'redeem')), fields=('charge',), name='charge_redeemed_once'),
        ),
        migrations.AddConstraint(
            model_name='voucherentry',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'reverse')), fields=('charge',), name='charge_reversed_once'),
        ),
        migrations.AddConstraint(
            model_name='voucherentry',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'issue')), fields=('voucher',), name='voucher_issued_once'),
        ),
        migrations.AddConstraint(
            model_name='voucherentry',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('amount__lt', 0), ('kind', 'redeem')), models.Q(('kind', 'redeem'), _negated=True), _connector='OR'), name='redemption_is_negative'),
        ),
        migrations.AddConstraint(
            model_name='voucherentry',
            constraint=models.CheckConstraint(condition=models.Q(('balance_after__gte', 0)), name='voucher_entry_balance_not_negative'),
        ),
    ]
