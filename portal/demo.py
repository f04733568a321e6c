"""The demo platform: each app may have a ``demo.seed(stdout)``; they run in dependency order."""

from importlib import import_module

from instrumentshare.accounts.demo import logins

SEEDERS = ["instrumentshare.accounts.demo", "catalog.demo", "bookings.demo", "submissions.demo", "usage.demo",
           "billing.demo", "oversight.demo"]


def seed_all(stdout=None) -> None:
    for module_name in SEEDERS:
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue
            raise
        module.seed(stdout)
        if stdout:
            stdout.write("\n")


def print_logins(stdout) -> None:
    rows = [("role", "username", "password"), *logins()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    line = "+".join("-" * (w + 2) for w in widths)
    stdout.write(f"+{line}+\n")
    for index, row in enumerate(rows):
        stdout.write("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |\n")
        if index == 0:
            stdout.write(f"+{line}+\n")
    stdout.write(f"+{line}+\n")
