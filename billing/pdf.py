"""The invoice as a PDF, bilingual like the HTML view, readable on any viewer and fit for archiving.

Every glyph comes from one TrueType font embedded in the file as a subset (WenQuanYi Micro Hei, Debian's
``fonts-wqy-microhei``, installed by the image and by ``make test``; ``INVOICE_FONT_PATH`` names another):
Chinese and Latin alike, so no text relies on fonts the reader's viewer may lack (PDF/A asks the same),
and the document carries its title, author, subject, language and creator. Where no such font is
installed the invoice falls back to the Adobe CID font STSong-Light, which is *not* embedded (a viewer
without Chinese fonts shows boxes); ``manage.py check`` warns about it (billing.W001).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from xml.sax.saxutils import escape

from django.conf import settings
from django.utils import timezone

from .models import Invoice
from .queries import invoice_lines

logger = logging.getLogger(__name__)
EMBEDDED = "InvoiceSans"
FALLBACK = "STSong-Light"


def font_path() -> Path | None:
    """The TrueType (or TrueType collection) file invoices embed, or None when none is installed."""
    for candidate in settings.INVOICE_FONT_PATHS:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def _font() -> str:
    path = font_path()
    return _registered(str(path) if path else None)


@lru_cache(maxsize=4)
def _registered(path: str | None) -> str:
    """Register the invoice font once per process and file; its name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    if path is not None:
        name = f"{EMBEDDED}-{Path(path).stem}"
        pdfmetrics.registerFont(TTFont(name, path, subfontIndex=0))
        return name
    logger.warning("no CJK TrueType font for invoices (INVOICE_FONT_PATH): using %s, not embedded", FALLBACK)
    pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK))
    return FALLBACK


def _e(value) -> str:
    return escape(str(value or ""))


def _money(value) -> str:
    return f"{value:,.2f}"


def _zh(text) -> str:
    """Text that may hold Chinese (the whole document is set in the one embedded font)."""
    return _e(text)


def _label(chinese: str, english: str) -> str:
    return f"{chinese} {english}"


def render(invoice: Invoice) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = _font()
    body = ParagraphStyle("body", fontName=font, bulletFontName=font, fontSize=9.5, leading=13)
    title = ParagraphStyle("title", parent=body, fontSize=16, leading=22)
    buffer = BytesIO()
    kind = "贷项通知单 Credit note" if invoice.is_credit_note else "服务费发票 Invoice"
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                                 bottomMargin=16 * mm, title=f"{kind} {invoice.number}", author=invoice.issuer_name,
                                 subject=f"{invoice.period} {invoice.payer_name}", creator="InstrumentShare",
                                 lang="zh-CN", invariant=True, initialFontName=font)
    heading = _label("贷项通知单", "Credit note") if invoice.is_credit_note else _label("服务费发票", "Invoice")
    issued = timezone.localtime(invoice.issued_at).strftime("%Y-%m-%d")
    story = [
        Paragraph(f"{heading} {_e(invoice.number)}", title),
        Paragraph(f"{_label('开票日期', 'Issued')}: {issued} | {_label('账期', 'Period')}: {invoice.period} | "
                  f"{_label('币种', 'Currency')}: {invoice.currency}", body),
    ]
    if invoice.credit_for_id:
        story.append(Paragraph(f"{_label('冲销发票', 'Corrects')}: {_e(invoice.credit_for.number)} | "
                               f"{_label('原因', 'Reason')}: {_zh(invoice.reason)}", body))
    issuer = "<br/>".join(_zh(v) for v in (invoice.issuer_name, invoice.issuer_address, invoice.issuer_tax_number))
    payer = "<br/>".join([
        _zh(invoice.payer_name), _zh(invoice.payer_address), _e(invoice.payer_tax_number),
        f"{_zh(invoice.payer_contact)} {_e(invoice.payer_email)}",
        f"{_label('账户', 'Account')}: {_e(invoice.account_number)} {_zh(invoice.account_name)}",
        _zh(invoice.funding_programme)])
    parties = Table([[Paragraph(_label("开票方", "Issuer"), body), Paragraph(_label("付款方", "Payer"), body)],
                     [Paragraph(issuer, body), Paragraph(payer, body)]], colWidths=[87 * mm, 87 * mm])
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("FONTNAME", (0, 0), (-1, -1), font),
                                 ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey)]))
    story += [Spacer(1, 5 * mm), parties, Spacer(1, 6 * mm)]
    headers = [("", "#"), ("仪器", "Instrument"), ("机时", "Hours"), ("样品", "Samples"), ("次数", "Uses"),
               ("金额", "Amount"), ("创新券", "Voucher")]
    rows = [[Paragraph(_label(zh, en) if zh else en, body) for zh, en in headers]]
    for line in invoice_lines(invoice):
        rows.append([str(line.position), Paragraph(_zh(line.description), body), f"{line.hours}", str(line.samples),
                     str(line.uses), _money(line.amount), _money(line.voucher_amount)])
    rows += [
        ["", Paragraph(_label("小计", "Subtotal"), body), "", "", "", _money(invoice.subtotal), ""],
        ["", Paragraph(_label("创新券支付", "Paid by innovation vouchers"), body), "", "", "", "",
         _money(invoice.voucher_amount)],
        ["", Paragraph(_label("应付金额", "Amount due"), body), "", "", "", _money(invoice.amount_due), ""],
    ]
    table = Table(rows, colWidths=[8 * mm, 70 * mm, 18 * mm, 18 * mm, 16 * mm, 24 * mm, 22 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("ALIGN", (2, 1), (-1, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black), ("LINEABOVE", (0, -3), (-1, -3), 0.6, colors.black),
        ("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#eef3fb")),
    ]))
    story += [table, Spacer(1, 6 * mm), Paragraph(
        "本发票开具后不可更改；更正以贷项通知单进行。 "
        "This invoice never changes once issued; corrections are credit notes.", body)]
    document.build(story)
    return buffer.getvalue()
