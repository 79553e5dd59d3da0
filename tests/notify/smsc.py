"""An in-process SMSC: enough SMPP 3.4 server to test the ``sms`` channel over real TCP.

It speaks the wire with smpp.pdu's encoder (not smpp.twisted's client code, so the two sides are not
the same code agreeing with itself): answers bind_transmitter/transceiver (checking system_id and
password), submit_sm (message ids ``m1``, ``m2``, …), enquire_link and unbind; records every submit_sm;
can refuse submits with a chosen status, drop the connection, and send delivery receipts.
"""

from __future__ import annotations

import itertools
import struct
from io import BytesIO

from smpp.pdu import operations as op
from smpp.pdu import pdu_types as t
from smpp.pdu.pdu_encoding import PDUEncoder
from twisted.internet import defer, protocol


class SmscProtocol(protocol.Protocol):
    def connectionMade(self) -> None:
        self.buffer = b""
        self.bound_as = None
        self.encoder = PDUEncoder()
        self.seq = itertools.count(1000)
        self.factory.sessions.append(self)

    def connectionLost(self, reason=None) -> None:
        if self in self.factory.sessions:
            self.factory.sessions.remove(self)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 4:
            length = struct.unpack("!L", self.buffer[:4])[0]
            if len(self.buffer) < length:
                return
            raw, self.buffer = self.buffer[:length], self.buffer[length:]
            self.pdu_received(self.encoder.decode(BytesIO(raw)))

    def send(self, pdu) -> None:
        self.transport.write(self.encoder.encode(pdu))

    def pdu_received(self, pdu) -> None:
        f = self.factory
        f.received.append(pdu)
        name = pdu.id.name
        if name in ("bind_transmitter", "bind_transceiver"):
            ok = (pdu.params["system_id"], pdu.params["password"]) == (f.system_id, f.password)
            status = t.CommandStatus.ESME_ROK if ok else t.CommandStatus.ESME_RINVPASWD
            resp = op.BindTransmitterResp if name == "bind_transmitter" else op.BindTransceiverResp
            self.send(resp(seqNum=pdu.seqNum, status=status, system_id="SIMSMSC"))
            if ok:
                self.bound_as = name
                f.binds.append(name)
        elif name == "submit_sm":
            if f.refuse:
                self.send(op.SubmitSMResp(seqNum=pdu.seqNum, status=f.refuse.pop(0)))
                return
            message_id = f"m{next(f.ids)}"
            f.submitted.append((message_id, pdu))
            self.send(op.SubmitSMResp(seqNum=pdu.seqNum, message_id=message_id))
            if f.drop_after_submits and len(f.submitted) == f.drop_after_submits:
                self.transport.loseConnection()
        elif name == "enquire_link":
            self.send(op.EnquireLinkResp(seqNum=pdu.seqNum))
        elif name == "unbind":
            self.send(op.UnbindResp(seqNum=pdu.seqNum))
            self.transport.loseConnection()
        elif name == "deliver_sm_resp":
            f.receipt_acks.append(pdu)
            if f.acked is not None and not f.acked.called:
                f.acked.callback(pdu)

    def deliver_receipt(self, message_id: str, stat: str = "DELIVRD", err: str = "000") -> None:
        text = (f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:2605012330 "
                f"done date:2605012331 stat:{stat} err:{err} text:").encode()
        self.send(op.DeliverSM(
            seqNum=next(self.seq), source_addr="8613800138000", destination_addr="Watchline",
            esm_class=t.EsmClass(t.EsmClassMode.DEFAULT, t.EsmClassType.SMSC_DELIVERY_RECEIPT),
            protocol_id=0, priority_flag=t.PriorityFlag.LEVEL_0,
            registered_delivery=t.RegisteredDelivery(t.RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED),
            replace_if_present_flag=t.ReplaceIfPresentFlag.DO_NOT_REPLACE, data_coding=t.DataCoding(),
            sm_default_msg_id=0, short_message=text))


class Smsc(protocol.Factory):
    protocol = SmscProtocol

    def __init__(self, system_id: str = "watchline", password: str = "s3cret") -> None:
        self.system_id, self.password = system_id.encode(), password.encode()
        self.sessions: list[SmscProtocol] = []
        self.received: list = []
        self.submitted: list[tuple[str, object]] = []
        self.binds: list[str] = []
        self.refuse: list = []  # statuses to answer the next submits with
        self.drop_after_submits = 0
        self.receipt_acks: list = []
        self.acked: defer.Deferred | None = None
        self.ids = itertools.count(1)
