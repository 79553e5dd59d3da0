"""SMS bodies on the wire: coding, segmentation and delivery receipts (SMPP 3.4 / GSM 03.40).

Plain GSM-safe text goes in the SMSC default alphabet (160 characters, 153 per part when split);
anything else — Chinese above all — goes as UCS2 (UTF-16BE: 70 characters, 67 per part). A long text
is split into parts that carry a concatenation header (UDH ``05 00 03 ref total seq``), with the UDHI
bit set in esm_class, so the phone shows one message. Parts never split a surrogate pair.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

MAX_PARTS = 10  # a notice longer than this is a template bug, not something to bill ten SMS for

# Characters that are one septet in the GSM 03.38 default alphabet and the same in ASCII; anything
# else (the escape-table characters like { } [ ] ~ \ ^ | €, and all CJK) goes as UCS2.
_GSM_SAFE = set(string.ascii_letters + string.digits + " \n\r!\"#$%&'()*+,-./:;<=>?@_")


@dataclass(frozen=True)
class Coded:
    ucs2: bool
    parts: tuple[bytes, ...]  # each part's short_message, with its UDH when there are several

    @property
    def concatenated(self) -> bool:
        return len(self.parts) > 1


def is_gsm_safe(text: str) -> bool:
    return all(ch in _GSM_SAFE for ch in text)


def code_text(text: str, ref: int) -> Coded:
    """``text`` as SMPP short_message parts; ``ref`` (0-255) ties the parts of one message together."""
    if not text:
        raise ValueError("an SMS needs a body")
    if is_gsm_safe(text):
        raw, single, per_part, unit = text.encode("ascii"), 160, 153, 1
        ucs2 = False
    else:
        raw, single, per_part, unit = text.encode("utf-16-be"), 140, 134, 2
        ucs2 = True
    if len(raw) <= single:
        return Coded(ucs2, (raw,))
    chunks = _split(raw, per_part, unit, ucs2)
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"the text needs {len(chunks)} SMS parts; at most {MAX_PARTS} are sent")
    total = len(chunks)
    return Coded(ucs2, tuple(bytes((5, 0, 3, ref & 0xFF, total, seq)) + chunk
                             for seq, chunk in enumerate(chunks, start=1)))


def _split(raw: bytes, size: int, unit: int, ucs2: bool) -> list[bytes]:
    chunks, start = [], 0
    while start < len(raw):
        end = min(len(raw), start + size)
        if ucs2 and end < len(raw) and 0xD8 <= raw[end - 2] <= 0xDB:  # a high surrogate: keep the pair whole
            end -= unit
        chunks.append(raw[start:end])
        start = end
    return chunks


def decode_parts(parts: list[bytes], ucs2: bool) -> str:
    """The text a phone shows for ``parts`` (the inverse of ``code_text``; used by tests and logs)."""
    body = b"".join(p[p[0] + 1:] if len(parts) > 1 else p for p in parts)
    return body.decode("utf-16-be" if ucs2 else "ascii")


# -- delivery receipts ------------------------------------------------------------------------------
# SMPP 3.4 Appendix B: "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
# stat:DDDDDDD err:E text:..."; newer SMSCs also send the receipted_message_id / message_state TLVs.
_RECEIPT = re.compile(rb"id:(?P<id>\S+).*?stat:(?P<stat>[A-Z]+)(?:.*?err:(?P<err>\S+))?", re.S | re.I)
_FINAL = {"DELIVRD": "delivered", "DELIVERED": "delivered", "EXPIRED": "failed", "DELETED": "failed",
          "UNDELIV": "failed", "UNDELIVERABLE": "failed", "REJECTD": "failed", "REJECTED": "failed"}


@dataclass(frozen=True)
class Receipt:
    message_id: str
    status: str  # delivered | failed
    state: str  # the SMSC's word (DELIVRD, UNDELIV, ...)
    error: str | None


def parse_receipt(params: dict) -> Receipt | None:
    """A delivery receipt from a deliver_sm's params; None when it is not a final one (ENROUTE,
    ACCEPTD) or not a receipt at all."""
    text = params.get("short_message") or params.get("message_payload") or b""
    m = _RECEIPT.search(text if isinstance(text, bytes) else str(text).encode())
    message_id = params.get("receipted_message_id")
    state = getattr(params.get("message_state"), "name", None)
    if m is not None:
        message_id = message_id or m.group("id")
        state = state or m.group("stat").decode().upper()
    if not message_id or state is None:
        return None
    status = _FINAL.get(state.upper())
    if status is None:
        return None
    message_id = message_id.decode() if isinstance(message_id, bytes) else str(message_id)
    err = m.group("err").decode() if m is not None and m.group("err") else None
    error = None if status == "delivered" else f"{state}" + (f" err:{err}" if err else "")
    return Receipt(message_id, status, state, error)
