"""The invoice as a PDF, with reportlab and its built-in Adobe CID font for Chinese (STSong-Light):
no font file to ship, nothing to install beside the wheel. Bilingual labels, like the HTML view."""

from __future__ import annotations

from io import BytesIO
from xml.sax.saxutils import escape

from django.utils import timezone

from .models import Invoice
from .queries import invoice_lines

FONT = "STSong-Light"


def _font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _e(value) -> str:
    return escape(str(value or ""))


def _money(value) -> str:
    return f"{value:,.2f}"


def _zh(text) -> str:
    """Text that may hold Chinese, in the CID font; Latin labels and figures stay in Helvetica."""
    return f'<font name="{FONT}">{_e(text)}</font>'


def _label(chinese: str, english: str) -> str:
    return f'<font name="{FONT}">{chinese}</font> {english}'


def render(invoice: Invoice) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = _font()
    body = ParagraphStyle("body", fontName="Helvetica", fontSize=9.5, leading=13)
    title = ParagraphStyle("title", parent=body, fontSize=16, leading=22)
    buffer = BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                                 bottomMargin=16 * mm, title=invoice.number, author=invoice.issuer_name)
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
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
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
        ["", Paragraph(f"<b>{_label('应付金额', 'Amount due')}</b>", body), "", "", "", _money(invoice.amount_due), ""],
    ]
    table = Table(rows, colWidths=[8 * mm, 70 * mm, 18 * mm, 18 * mm, 16 * mm, 24 * mm, 22 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), "Helvetica"), ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("FONTNAME", (5, -1), (5, -1), "Helvetica-Bold"),
        ("ALIGN", (2, 1), (-1, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black), ("LINEABOVE", (0, -3), (-1, -3), 0.6, colors.black),
        ("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#eef3fb")),
    ]))
    story += [table, Spacer(1, 6 * mm), Paragraph(
        f'<font name="{font}">本发票开具后不可更改；更正以贷项通知单进行。</font> '
        "This invoice never changes once issued; corrections are credit notes.", body)]
    document.build(story)
    return buffer.getvalue()
