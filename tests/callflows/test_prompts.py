"""Prompts from tones, WAV files (sox), espeak-ng TTS and jinja2 templates."""

from __future__ import annotations

import shutil
import wave
from array import array

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from callflows.media.g711 import ulaw_decode
from callflows.prompts import Prompt, PromptError, PromptLibrary, ReactorProcessRunner


def write_wav(path, rate=8000, channels=1, seconds=0.5, value=1000):
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(array("h", [value] * int(rate * seconds * channels)).tobytes())


class FakeRunner:
    """Records argv; 'converts' by writing an 8 kHz mono file where sox would."""

    def __init__(self, code=0):
        self.calls = []
        self.code = code

    async def run(self, argv):
        self.calls.append(argv)
        if self.code == 0:
            target = argv[argv.index("-w") + 1] if "-w" in argv else argv[-1]
            write_wav(target, seconds=0.25, value=-500)
        return self.code, b"boom" if self.code else b""


def run(coro):
    box = []
    Deferred.fromCoroutine(coro).addBoth(box.append)
    value = box[0]
    if hasattr(value, "raiseException"):
        value.raiseException()
    return value


def test_tone_silence_and_encodings():
    tone = Prompt.tone(1000, 0.1)
    assert tone.duration == pytest.approx(0.1) and len(tone.audio("PCMU")) == 800
    assert tone.audio("PCMU") is tone.audio("PCMU")  # encoded once
    assert set(Prompt.silence(0.02).audio("PCMA")) == {0xD5}


def test_8k_mono_wav_loads_without_conversion(tmp_path):
    write_wav(tmp_path / "p.wav")
    runner = FakeRunner()
    library = PromptLibrary(tmp_path / "cache", runner)
    prompt = run(library.wav(tmp_path / "p.wav"))
    assert runner.calls == [] and prompt.duration == 0.5
    assert {ulaw_decode(b) for b in prompt.audio("PCMU")} == {ulaw_decode(prompt.audio("PCMU")[0])}
    assert run(library.wav(tmp_path / "p.wav")) is prompt


def test_other_formats_are_converted_once_into_the_cache(tmp_path):
    write_wav(tmp_path / "hi.wav", rate=16000, channels=2)
    runner = FakeRunner()
    library = PromptLibrary(tmp_path / "cache", runner)
    prompt = run(library.wav(tmp_path / "hi.wav"))
    assert prompt.duration == 0.25 and len(runner.calls) == 1
    assert runner.calls[0][:2] == ["/usr/bin/sox", str(tmp_path / "hi.wav")]
    assert "-r" in runner.calls[0] and "8000" in runner.calls[0]
    fresh = PromptLibrary(tmp_path / "cache", runner)  # another process: the disk cache is used
    assert run(fresh.wav(tmp_path / "hi.wav")).duration == 0.25 and len(runner.calls) == 1


def test_errors_are_prompt_errors(tmp_path):
    library = PromptLibrary(tmp_path / "cache", FakeRunner(code=2))
    with pytest.raises(PromptError):
        run(library.wav(tmp_path / "missing.wav"))
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(PromptError, match="sox could not convert junk.wav: boom"):
        run(library.wav(tmp_path / "junk.wav"))
    with pytest.raises(PromptError, match="espeak-ng failed"):
        run(library.tts("hello"))


def test_tts_cached_by_voice_and_text_and_templates(tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "pin.txt.j2").write_text("Vehicle {{ plate }}: please enter your PIN.\n")
    runner = FakeRunner()
    library = PromptLibrary(tmp_path / "cache", runner, templates=tmp_path / "tpl")
    assert library.render_text("pin.txt.j2", plate="粤B12345") == "Vehicle 粤B12345: please enter your PIN."
    assert library.render_text("Hi {{ name }}", name="Li") == "Hi Li"
    first = run(library.render("pin.txt.j2", voice="en", plate="A1"))
    again = run(library.tts("Vehicle A1: please enter your PIN.", voice="en"))
    run(library.tts("Vehicle A1: please enter your PIN.", voice="cmn"))
    assert first is again and len([c for c in runner.calls if "espeak-ng" in c[0]]) == 2
    assert runner.calls[0][:3] == ["/usr/bin/espeak-ng", "-v", "en"]


@pytest.mark.skipif(not (shutil.which("sox") and shutil.which("espeak-ng")), reason="needs sox and espeak-ng")
@pytest_twisted.ensureDeferred
async def test_real_sox_and_espeak_ng_in_english_and_mandarin(tmp_path):
    write_wav(tmp_path / "hi.wav", rate=44100, channels=2, seconds=1.0)
    library = PromptLibrary(tmp_path / "cache", ReactorProcessRunner(reactor))
    converted = await library.wav(tmp_path / "hi.wav")
    assert converted.duration == pytest.approx(1.0, abs=0.01)
    english = await library.tts("Please enter your PIN", voice="en")
    mandarin = await library.tts("您好，请输入密码", voice="cmn")
    assert 0.8 < english.duration < 5 and 0.8 < mandarin.duration < 6
    assert max(array("h", mandarin.pcm)) > 1000  # speech, not silence


def test_concurrent_callers_share_one_tts_run_and_work_files_are_unique(tmp_path):
    """Five calls wanting one notice at once: one espeak-ng and one sox run, one Prompt for all; a
    failure reaches every waiter and the next ask tries again."""
    pending, calls = [], []

    class SlowRunner(FakeRunner):
        async def run(self, argv):
            d = Deferred()
            pending.append(d)
            await d
            calls.append(argv)
            return await super().run(argv)

    runner = SlowRunner()
    library = PromptLibrary(tmp_path / "cache", runner)
    waiting = [Deferred.fromCoroutine(library.tts("Notice", voice="en")) for _ in range(5)]
    while pending:
        pending.pop(0).callback(None)
    got = [run_result(d) for d in waiting]
    assert all(p is got[0] for p in got) and len(calls) == 2  # espeak-ng, then sox
    espeak_out, sox_in, sox_out = calls[0][calls[0].index("-w") + 1], calls[1][1], calls[1][-1]
    assert espeak_out == sox_in and ".espeak-" in espeak_out and ".tmp-" in sox_out
    assert [p.suffixes for p in (tmp_path / "cache").iterdir()] == [[".wav"]]  # only the finished prompt is left

    failing = PromptLibrary(tmp_path / "cache2", FakeRunner(code=1))
    errors = [Deferred.fromCoroutine(failing.tts("x")) for _ in range(2)]
    for d in errors:
        with pytest.raises(PromptError):
            run_result(d)
    assert list((tmp_path / "cache2").iterdir()) == []  # no work file left behind by the failed runs


def test_a_cancelled_caller_does_not_cancel_the_prompt_others_wait_for(tmp_path):
    from twisted.internet.defer import CancelledError

    pending = []

    class SlowRunner(FakeRunner):
        async def run(self, argv):
            d = Deferred()
            pending.append(d)
            await d
            return await super().run(argv)

    library = PromptLibrary(tmp_path / "cache", SlowRunner())
    first = Deferred.fromCoroutine(library.tts("Notice"))
    second = Deferred.fromCoroutine(library.tts("Notice"))
    first.cancel()  # the first caller's call was torn down while espeak-ng ran
    with pytest.raises(CancelledError):
        run_result(first)
    while pending:
        pending.pop(0).callback(None)
    prompt = run_result(second)
    assert isinstance(prompt, Prompt)
    assert run_result(Deferred.fromCoroutine(library.tts("Notice"))) is prompt  # made once, kept


def run_result(d):
    box = []
    d.addBoth(box.append)
    if hasattr(box[0], "raiseException"):
        box[0].raiseException()
    return box[0]
