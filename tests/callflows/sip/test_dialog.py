"""Dialog construction, in-dialog requests, CANCEL and CSeq ordering."""

from __future__ import annotations

from callflows.sip.dialog import Dialog, cancel_for
from callflows.sip.endpoint import response_for
from callflows.sip.message import SipRequest, parse_message
from tests.callflows.sip.test_message import INVITE


def test_uas_dialog_and_its_bye():
    invite = parse_message(INVITE)
    invite.headers.add("record-route", "<sip:10.9.9.9;lr>")
    dialog = Dialog.from_uas(invite, "ourtag", "<sip:watchline@127.0.0.1:5060>", "127.0.0.1:5060",
                             ("10.0.0.2", 5062))
    assert dialog.key == ("a84b4c76e66710@10.0.0.2", "ourtag", "1928301774")
    assert dialog.remote_target.address == ("10.0.0.2", 5062)
    assert dialog.peer == ("10.9.9.9", 5060)  # the first route
    bye = dialog.request("BYE")
    assert bye.uri == "sip:5551234@10.0.0.2:5062" and bye.headers.get("route") == "<sip:10.9.9.9;lr>"
    assert "tag=ourtag" in bye.headers.get("from") and "tag=1928301774" in bye.headers.get("to")
    assert dialog.request("INFO").cseq[0] == bye.cseq[0] + 1


def test_uac_dialog_from_2xx_and_ack_reuses_invite_cseq():
    invite = parse_message(INVITE)
    ok = response_for(invite, 200, "OK", "theirs")
    ok.headers.add("contact", "<sip:bob@10.1.1.1:5090>")
    ok.headers.add("record-route", "<sip:p1;lr>")
    ok.headers.add("record-route", "<sip:p2;lr>")
    dialog = Dialog.from_uac(invite, ok, "h:5060", ("10.0.0.2", 5062))
    assert dialog.remote.tag == "theirs" and dialog.route_set == ["<sip:p2;lr>", "<sip:p1;lr>"]
    ack = dialog.ack(314159)
    assert ack.cseq == (314159, "ACK") and ack.uri == "sip:bob@10.1.1.1:5090"
    # The routes are names we do not resolve on the call path, so the remote target (an address) it is.
    assert dialog.peer == ("10.1.1.1", 5090)


def test_accepts_rejects_old_cseq():
    invite = parse_message(INVITE)
    dialog = Dialog.from_uas(invite, "t", "<c>", "h", ("10.0.0.2", 5062))
    old = SipRequest("BYE", "x", invite.headers.copy())
    old.headers.set("cseq", "314159 BYE")
    assert not dialog.accepts(old)
    old.headers.set("cseq", "314160 BYE")
    assert dialog.accepts(old)


def test_cancel_copies_branch_and_cseq_number():
    invite = parse_message(INVITE)
    cancel = cancel_for(invite)
    assert cancel.branch == invite.branch and cancel.cseq == (314159, "CANCEL") and cancel.uri == invite.uri
