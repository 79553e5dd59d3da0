"""Prompts: audio a call can play, from WAV files (converted with sox unless already 8 kHz mono
16-bit), from text through espeak-ng (English ``en`` and Mandarin ``cmn`` voices), and from jinja2
templates rendered to text first. Converted and synthesised audio is cached on disk by content key,
and loaded prompts are kept in memory, so a prompt is encoded to G.711 once, not per call.

Many calls often want the same prompt at once (a campaign's lines all start with the same notice,
several incidents speak the same greeting): one sox/espeak-ng run serves every concurrent caller of a
key, and work files carry a unique name, so other processes sharing the cache folder never write into
the same file; the finished file is renamed into place atomically.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import uuid
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import jinja2
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorProcess
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure

from callflows.media.g711 import encode_pcm16

RATE = 8000


class PromptError(RuntimeError):
    pass


@dataclass(eq=False)
class Prompt:
    """8 kHz mono 16-bit little-endian PCM, with its G.711 encodings made on first use."""

    pcm: bytes
    name: str = ""
    _encoded: dict[str, bytes] = field(default_factory=dict, repr=False)

    def audio(self, codec: str) -> bytes:
        encoded = self._encoded.get(codec)
        if encoded is None:
            encoded = self._encoded[codec] = encode_pcm16(self.pcm, codec)
        return encoded

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / RATE

    @classmethod
    def silence(cls, seconds: float) -> Prompt:
        return cls(bytes(2 * int(seconds * RATE)), f"silence {seconds}s")

    @classmethod
    def tone(cls, frequency: float, seconds: float, amplitude: int = 8000) -> Prompt:
        n = int(seconds * RATE)
        samples = (int(amplitude * math.sin(2 * math.pi * frequency * i / RATE)) for i in range(n))
        return cls(b"".join(s.to_bytes(2, "little", signed=True) for s in samples), f"tone {frequency}Hz")


def read_wav(data: bytes) -> tuple[bytes, int, int, int]:
    """(frames, rate, channels, sample width) of a PCM WAV; raises PromptError otherwise."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            return wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
    except (wave.Error, EOFError) as exc:
        raise PromptError(f"not a PCM WAV file: {exc}") from exc


class ProcessRunner(Protocol):
    async def run(self, argv: list[str]) -> tuple[int, bytes]:
        """Run a program; return (exit code, stderr)."""


class ReactorProcessRunner:
    """Runs sox and espeak-ng as child processes of the reactor (never blocking it)."""

    def __init__(self, reactor: IReactorProcess):
        self._reactor = reactor

    async def run(self, argv: list[str]) -> tuple[int, bytes]:
        _, err, code = await getProcessOutputAndValue(argv[0], argv[1:], env=dict(os.environ),
                                                      reactor=self._reactor)
        return code, err


def _work_file(target: Path, kind: str) -> Path:
    """A name no other run (in this process or another sharing the cache) is writing."""
    return target.with_suffix(f".{kind}-{uuid.uuid4().hex[:12]}.wav")


class PromptLibrary:
    def __init__(self, cache_dir: Path | str, runner: ProcessRunner, templates: Path | str | None = None,
                 sox: str = "/usr/bin/sox", espeak: str = "/usr/bin/espeak-ng"):
        self.cache_dir = Path(cache_dir)
        self._runner = runner
        self._sox = sox
        self._espeak = espeak
        loader = jinja2.FileSystemLoader(str(templates)) if templates else jinja2.DictLoader({})
        self.templates = jinja2.Environment(loader=loader, autoescape=False, undefined=jinja2.StrictUndefined)
        self._loaded: dict[str, Prompt] = {}
        self._making: dict[str, list[Deferred[Prompt]]] = {}  # key being made -> the callers waiting for it

    async def _once(self, key: str, make: Callable[[], Awaitable[Prompt]]) -> Prompt:
        """The prompt ``key``, made by one ``make()`` however many callers ask while it runs. The making
        runs on its own, not in any caller's coroutine: a caller cancelled meanwhile (its call torn
        down) stops waiting without cancelling the work the others wait for."""
        if key in self._loaded:
            return self._loaded[key]
        waiter: Deferred[Prompt] = Deferred()
        waiters = self._making.get(key)
        if waiters is not None:
            waiters.append(waiter)
        else:
            self._making[key] = [waiter]  # before the making starts: it may finish at once
            Deferred.fromCoroutine(self._make(key, make))
        return await waiter

    async def _make(self, key: str, make: Callable[[], Awaitable[Prompt]]) -> None:
        try:
            outcome: Prompt | Failure = await make()
            self._loaded[key] = outcome
        except BaseException:  # handed to every waiter, never raised here
            outcome = Failure()
        finally:
            waiters = self._making.pop(key, [])
        for waiter in waiters:
            if waiter.called:  # a cancelled caller has already gone
                continue
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    def _cached(self, key: str) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.cache_dir / f"{key}.wav"

    async def _convert(self, source: Path, target: Path) -> None:
        tmp = _work_file(target, "tmp")
        try:
            code, err = await self._runner.run([self._sox, str(source), "-r", str(RATE), "-c", "1", "-b", "16",
                                                "-e", "signed-integer", str(tmp)])
            if code != 0 or not tmp.exists():
                raise PromptError(f"sox could not convert {source.name}: {err.decode(errors='replace').strip()}")
            os.replace(tmp, target)  # atomic, so a half-written file is never taken from the cache
        finally:
            tmp.unlink(missing_ok=True)  # what a failed or cancelled sox left (gone after the rename)

    async def wav(self, path: Path | str) -> Prompt:
        path = Path(path)
        try:
            stat = path.stat()
            data = path.read_bytes()
        except OSError as exc:
            raise PromptError(f"cannot read prompt {path}: {exc}") from exc
        key = "wav-" + hashlib.sha256(f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}".encode()).hexdigest()[:24]
        return await self._once(key, lambda: self._load_wav(key, path, data))

    async def _load_wav(self, key: str, path: Path, data: bytes) -> Prompt:
        try:
            frames, rate, channels, width = read_wav(data)
            ready = (rate, channels, width) == (RATE, 1, 2)
        except PromptError:
            ready = False  # not PCM (µ-law, float...): sox reads it
        if not ready:
            target = self._cached(key)
            if not target.exists():
                await self._convert(path, target)
            frames = read_wav(target.read_bytes())[0]
        return Prompt(frames, path.name)

    async def tts(self, text: str, voice: str = "en") -> Prompt:
        """Speak ``text`` with an espeak-ng voice (``en``, ``cmn``...), cached by (voice, text)."""
        key = "tts-" + hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()[:24]
        return await self._once(key, lambda: self._speak(key, text, voice))

    async def _speak(self, key: str, text: str, voice: str) -> Prompt:
        target = self._cached(key)
        if not target.exists():
            raw = _work_file(target, "espeak")
            try:
                code, err = await self._runner.run([self._espeak, "-v", voice, "-w", str(raw), "--", text])
                if code != 0 or not raw.exists():
                    raise PromptError(f"espeak-ng failed for voice {voice!r}: {err.decode(errors='replace').strip()}")
                await self._convert(raw, target)
            finally:
                raw.unlink(missing_ok=True)
        return Prompt(read_wav(target.read_bytes())[0], text[:40])

    def render_text(self, template: str, **context: object) -> str:
        """A named template from the template folder, or an inline template string."""
        try:
            tmpl = self.templates.get_template(template)
        except jinja2.TemplateNotFound:
            tmpl = self.templates.from_string(template)
        return tmpl.render(**context).strip()

    async def render(self, template: str, voice: str = "en", **context: object) -> Prompt:
        return await self.tts(self.render_text(template, **context), voice)
