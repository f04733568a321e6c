import io

from django.core.management.base import BaseCommand

from portal.demo import print_logins, seed_all


class Command(BaseCommand):
    help = "Create (or refresh) the demo city platform. Running it twice duplicates nothing."

    def handle(self, *args, verbosity=1, **options):
        if verbosity == 0:  # `make run`: rundemo prints the logins last
            seed_all(io.StringIO())
            return
        seed_all(self.stdout)
        self.stdout.write(self.style.SUCCESS("demo data ready. Logins:"))
        print_logins(self.stdout)
