"""Fill empty msgstr entries of a .po file from a JSON dictionary {msgid: msgstr}.

Usage: python scripts/fill_po.py locale/zh_Hans/LC_MESSAGES/django.po translations.json
Prints the msgids still untranslated. Keeps existing translations; clears the fuzzy flag of
entries it fills.
"""

import json
import re
import sys


def unquote(lines):
    return "".join(json.loads(line) for line in lines)


def quote(text):
    return json.dumps(text, ensure_ascii=False)


def _parts(lines):
    """(index of msgid, index of msgstr) of a block, or None for a header, a plural or a comment."""
    try:
        id_start = next(i for i, line in enumerate(lines) if line.startswith("msgid "))
        str_start = next(i for i, line in enumerate(lines) if line.startswith("msgstr "))
    except StopIteration:
        return None
    if any(line.startswith("msgid_plural") for line in lines):
        return None
    return id_start, str_start


def _filled(lines, str_start, msgstr):
    """The block with its translation, its fuzzy flag cleared."""
    head = [re.sub(r",\s*fuzzy", "", line) if line.startswith("#,") else line for line in lines[:str_start]]
    head = [line for line in head if line.strip() != "#,"]
    return "\n".join(head + ["msgstr " + quote(msgstr)])


def fill_block(block, translations, missing):
    lines = block.split("\n")
    parts = _parts(lines)
    if parts is None:
        return block
    id_start, str_start = parts
    msgid = unquote([lines[id_start][6:]] + lines[id_start + 1:str_start])
    msgstr = unquote([lines[str_start][7:]] + [line for line in lines[str_start + 1:] if line.startswith('"')])
    fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in lines)
    if not msgid or (msgstr and not fuzzy):
        return block
    if msgid not in translations:
        missing.append(msgid)
        return block
    return _filled(lines, str_start, translations[msgid])


def main(po_path, dict_path):
    translations = json.load(open(dict_path, encoding="utf-8"))
    blocks = open(po_path, encoding="utf-8").read().split("\n\n")
    missing = []
    out = [fill_block(block, translations, missing) for block in blocks]
    open(po_path, "w", encoding="utf-8").write("\n\n".join(out))
    for msgid in missing:
        print("untranslated:", msgid)


if __name__ == "__main__":
    main(*sys.argv[1:])
