"""Telephony: Watchline's own SIP user agent and RTP media, the call-flow API, prompts and recordings.

``Telephony`` (a Twisted service) answers inbound calls with registered flows and places outbound
calls; a flow works on a ``Call`` (play, collect, bridge, transfer, hangup). No PBX is needed: it
speaks SIP/UDP to any trunk or PBX.
"""

from callflows.call import Call
from callflows.calllog import CallLog, CallRecord, InMemoryCallLog
from callflows.outcomes import CallEnded, CallNotConnected, CallOutcome, NotAllowed
from callflows.prompts import Prompt, PromptLibrary
from callflows.settings import TelephonySettings
from callflows.telephony import Telephony

__all__ = [
    "Call", "CallEnded", "CallLog", "CallNotConnected", "CallOutcome", "CallRecord", "InMemoryCallLog",
    "NotAllowed", "Prompt", "PromptLibrary", "Telephony", "TelephonySettings",
]
