"""How an alarm is said to an owner, per language (falls back to the name with spaces)."""

from __future__ import annotations

_WORDS: dict[str, tuple[str, str]] = {  # name: (English, 中文)
    "sos": ("an emergency button alarm", "紧急按钮报警"),
    "overspeed": ("speeding", "超速报警"),
    "fatigue_driving": ("fatigue driving", "疲劳驾驶报警"),
    "low_voltage": ("low battery voltage", "主电源欠压报警"),
    "power_cut": ("the main power being cut", "主电源断电报警"),
    "geofence": ("entering or leaving an area", "进出区域报警"),
    "geofence_enter": ("entering a watched area", "进入区域报警"),
    "geofence_exit": ("leaving a watched area", "离开区域报警"),
    "vehicle_stolen": ("a theft alarm", "车辆被盗报警"),
    "illegal_ignition": ("the engine starting without authorisation", "非法点火报警"),
    "illegal_movement": ("the vehicle moving without authorisation", "非法位移报警"),
    "illegal_door_open": ("a door opening without authorisation", "非法开门报警"),
    "collision": ("a collision", "碰撞报警"),
    "rollover": ("a rollover", "侧翻报警"),
    "vibration": ("vibration", "震动报警"),
    "tow": ("being towed", "拖车报警"),
    "tampering": ("tampering with the tracker", "设备被拆报警"),
    "removing": ("the tracker being removed", "设备被拆除报警"),
    "low_battery": ("a low tracker battery", "设备电量低报警"),
    "accident": ("an accident", "事故报警"),
    "parking_timeout": ("parking too long", "超时停车报警"),
    "door": ("a door alarm", "车门报警"),
}


def alarm_words(name: str, language: str) -> str:
    words = _WORDS.get(name)
    if words is None:
        plain = name.replace("_", " ")
        return f"{plain} alarm" if language == "en" else f"{plain}报警"
    return words[0] if language == "en" else words[1]
