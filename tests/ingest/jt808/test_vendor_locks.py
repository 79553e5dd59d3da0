import pytest

from ingest.jt808 import vendor_locks as locks
from ingest.jt808.fields import FieldError, Found


def decode(decoder, hex_value: str) -> dict:
    found = Found({})
    assert decoder(bytes.fromhex(hex_value), found)
    return found.extras


def test_lock_command_forms():
    assert decode(locks.lock_command, "03 65") == {"lock_command": 3, "unlock_result": 0x65}
    assert decode(locks.lock_command, "22 00623a49 65") == {"lock_command": 0x22, "lock_card": 0x623A49,
                                                            "unlock_result": 0x65}
    assert decode(locks.lock_command, "03 363839363037 65") == {"lock_command": 3, "lock_password": "689607",
                                                               "unlock_result": 0x65}


def test_lock_event_with_the_driver_card():
    assert decode(locks.lock_event, "0004 0039") == {"event": 4}
    assert decode(locks.lock_event, "0065 000012345678 3930303137333833") == {"event": 0x65,
                                                                              "driver_unique_id": "90017383"}
    with pytest.raises(FieldError):
        decode(locks.lock_event, "0065 0000")


def test_seals_padlocks_and_string_lock():
    extras = decode(locks.seal_locks, "cd91fe1314da 1080 31 81 22")
    assert extras == {"lock1_id": "cd91fe1314da", "lock1_battery": 4.224, "lock1_seal": True}
    extras = decode(locks.padlocks, "01 0002604323 2795980277 53 0030")
    assert extras == {"lock1_id": "0002604323", "lock1_card": "2795980277", "lock1_battery": 83,
                      "lock1_locked": False}
    assert decode(locks.padlocks, "01a2") == {"battery": 4.18}
    assert decode(locks.string_lock, "0000 0d") == {"string": True, "motion": True, "cover": True}


def test_lock_status_text():
    assert decode(locks.mode_or_lock, "03") == {"mode": 3}
    assert decode(locks.mode_or_lock, b"*M00,45,1138600Roy1Open".hex()) == {"battery": 3.86}
    assert not locks.mode_or_lock(b"hello", Found({}))
