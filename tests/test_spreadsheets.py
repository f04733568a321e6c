"""The formula guard is one rule (core.spreadsheets): the Python form, its SQL form and its inverse agree."""

import pytest
from django.db import connection

from instrumentshare.core.spreadsheets import FORMULA_PREFIXES, guarded, guarded_sql, safe_cell, unguarded
from tests.conftest import requires_postgres

SAMPLES = ["", "Lab A", "电镜中心", "=1+2", "+86 532", "-5", "@SUM(A1)", "\t=1", "\rx", "'=already", "a=b", "'quote"]


def test_every_formula_start_is_quoted_and_read_back():
    for prefix in FORMULA_PREFIXES:
        assert guarded(prefix + "x") == "'" + prefix + "x"
    for text in SAMPLES:
        if not text.startswith("'"):   # text that itself starts with the quote cannot be told apart
            assert unguarded(guarded(text)) == text
    assert safe_cell(None) == "" and safe_cell(3) == 3 and guarded(None) == ""


@requires_postgres
@pytest.mark.django_db
def test_the_sql_form_quotes_exactly_what_the_python_form_quotes():
    with connection.cursor() as cursor:
        for text in SAMPLES:
            cursor.execute(f"SELECT {guarded_sql('%s')}", [text] * 3)   # the expression names its column 3 times
            assert (cursor.fetchone()[0] or "") == guarded(text), repr(text)
