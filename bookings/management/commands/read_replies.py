from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bookings.services import replies


class Command(BaseCommand):
    help = ("Read the calendar replies (iMIP) in the organizer's mailbox over IMAP: a booker's Decline cancels "
            "the booking. The mailbox is IMIP_IMAP_URL unless --url is given; the beat runs this every minute.")

    def add_arguments(self, parser):
        parser.add_argument("--url", default="", help="imaps://user:password@host:993/INBOX (or imap://)")

    def handle(self, *args, url="", **options):
        url = url or settings.IMIP_IMAP_URL
        if not url:
            raise CommandError("No mailbox: set IMIP_IMAP_URL or pass --url.")
        outcomes = replies.read_mailbox(url)
        cancelled = sum(outcome.action == "cancelled" for outcome in outcomes)
        self.stdout.write(f"{len(outcomes)} replies read, {cancelled} bookings cancelled")
