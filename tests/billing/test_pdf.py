"""Invoice PDFs read right on any viewer: every font embedded (a CJK subset), the Chinese text extractable,
and a renderer with no fonts of its own finds nothing missing. Read with poppler, as a viewer would."""

import shutil
import subprocess

import pytest

from billing.models import Invoice
from billing.pdf import font_path, render
from tests.billing.test_api import closed  # noqa: F401 - the fixture: a closed month with its invoices

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("pdffonts") is None, reason="needs poppler-utils (make test installs it)"),
    pytest.mark.skipif(font_path() is None, reason="needs fonts-wqy-microhei (make test installs it)"),
]


@pytest.fixture
def invoice_pdf(closed, tmp_path):  # noqa: F811
    invoice = Invoice.objects.get(pk=closed["company"].pk)
    path = tmp_path / "invoice.pdf"
    path.write_bytes(render(invoice))
    return invoice, path


def test_every_font_is_embedded_and_the_cjk_one_is_a_subset(invoice_pdf):
    _invoice, path = invoice_pdf
    lines = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout.splitlines()
    fonts = [line.split() for line in lines[2:] if line.strip()]
    assert fonts, "no font in the PDF"
    for columns in fonts:
        name, embedded, subset = columns[0], columns[-5], columns[-4]
        assert embedded == "yes" and subset == "yes", f"{name} is not an embedded subset"
        assert "+WenQuanYi" in name, name   # the CJK font sets every glyph, Latin ones too


def test_the_chinese_text_can_be_read_back(invoice_pdf):
    invoice, path = invoice_pdf
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert "服务费发票" in text and invoice.payer_name in text and invoice.number in text
    assert "本发票开具后不可更改" in text


def test_a_renderer_without_fonts_of_its_own_misses_no_glyph(invoice_pdf, tmp_path):
    _invoice, path = invoice_pdf
    # A fontconfig that knows no font at all: whatever the page needs must come from the file.
    config = tmp_path / "fonts.conf"
    config.write_text(f'<?xml version="1.0"?><fontconfig><cachedir>{tmp_path}/cache</cachedir></fontconfig>')
    result = subprocess.run(["pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / "p")],
                            capture_output=True, text=True, env={"FONTCONFIG_FILE": str(config), "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert "font" not in result.stderr.lower(), result.stderr
    assert (tmp_path / "p-1.png").stat().st_size > 1000


def test_the_document_says_what_it_is(invoice_pdf):
    invoice, path = invoice_pdf
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    assert f"服务费发票 Invoice {invoice.number}" in info and "InstrumentShare" in info


def test_without_a_font_the_invoice_still_renders_and_check_says_why(closed, settings):  # noqa: F811
    from django.core import checks

    settings.INVOICE_FONT_PATHS = []
    assert render(Invoice.objects.get(pk=closed["company"].pk)).startswith(b"%PDF")
    assert "billing.W001" in {message.id for message in checks.run_checks()}
