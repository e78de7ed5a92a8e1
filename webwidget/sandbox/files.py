"""Tiny but valid media files, served at /_sandbox/files/<name>.

Generated in code, except the sample video: a browser-playable WebM cannot be written in
a few lines, so `media/waves.webm` is shipped (media/README.md says how it was made).
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MEDIA = Path(__file__).resolve().parent / "media"


@dataclass(frozen=True)
class SandboxFile:
    """A served file: its bytes, MIME type and the ChatCaptain file ``type``."""

    data: bytes
    mime_type: str
    kind: str


def png(width: int = 16, height: int = 16, rgb: tuple[int, int, int] = (30, 110, 200)) -> bytes:
    """A solid-colour RGB PNG."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    row = b"\x00" + bytes(rgb) * width  # filter byte 0 then pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def _png_rows(width: int, height: int, pixel) -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


@cache  # pure and a few tenths of a second: every sandbox in a test run shares the bytes
def avatar_png(size: int = 48, bg: tuple = (31, 95, 191), fg: tuple = (235, 242, 252)) -> bytes:
    """A round-friendly placeholder avatar: a head-and-shoulders silhouette, antialiased."""
    half, steps = size / 2, 2

    def covered(x: float, y: float) -> bool:
        head = (x - half) ** 2 + (y - size * 0.38) ** 2 <= (size * 0.18) ** 2
        body = ((x - half) / (size * 0.34)) ** 2 + ((y - size * 0.98) / (size * 0.36)) ** 2 <= 1
        return head or body

    def pixel(x: int, y: int) -> tuple[int, ...]:
        hits = sum(
            covered(x + (i + 0.5) / steps, y + (j + 0.5) / steps)
            for i in range(steps)
            for j in range(steps)
        )
        share = hits / steps**2
        return tuple(round(b + (f - b) * share) for b, f in zip(bg, fg, strict=True))

    return _png_rows(size, size, pixel)


@cache
def harbour_png(width: int = 200, height: int = 125) -> bytes:
    """A small picture: sky, sun, sea with a few waves (the sandbox's sample image)."""

    def pixel(x: int, y: int) -> tuple[int, ...]:
        horizon = height * 0.6 + 3 * math.sin(x / 9)
        if (x - width * 0.72) ** 2 + (y - height * 0.36) ** 2 <= (height * 0.12) ** 2:
            return (255, 214, 120)
        if y < horizon:
            t = y / horizon
            return (round(250 - 90 * t), round(190 - 20 * t), round(150 + 60 * t))
        t = (y - horizon) / (height - horizon)
        crest = (y + 4 * math.sin(x / 7)) % 14 < 2
        base = (round(30 + 10 * t), round(110 - 40 * t), round(170 - 50 * t))
        return tuple(min(255, c + 45) for c in base) if crest else base

    return _png_rows(width, height, pixel)


def wav(seconds: float = 0.5, rate: int = 8000, freq: float = 440.0) -> bytes:
    """A mono 8-bit sine tone WAV."""
    frames = bytes(
        int(128 + 100 * math.sin(2 * math.pi * freq * i / rate)) for i in range(int(seconds * rate))
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(rate)
        out.writeframes(frames)
    return buf.getvalue()


def avi(width: int = 8, height: int = 8, frames: int = 4, fps: int = 4) -> bytes:
    """An uncompressed RGB AVI (RIFF) video; players accept it, browsers may not."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        pad = b"\x00" if len(body) % 2 else b""
        return tag + struct.pack("<I", len(body)) + body + pad

    def riff_list(kind: bytes, tag: bytes, body: bytes) -> bytes:
        return kind + struct.pack("<I", len(body) + 4) + tag + body

    frame_size = width * height * 3
    avih = struct.pack(
        "<IIIIIIIIII4I", 1_000_000 // fps, frame_size * fps, 0, 0x10, frames, 0, 1,
        frame_size, width, height, 0, 0, 0, 0,
    )
    strh = struct.pack(
        "<4s4sIHHIIIIIIIIhhhh", b"vids", b"DIB ", 0, 0, 0, 0, 1, fps, 0, frames,
        frame_size, 0xFFFFFFFF, 0, 0, 0, width, height,
    )
    strf = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, frame_size, 0, 0, 0, 0)
    strl = riff_list(b"LIST", b"strl", chunk(b"strh", strh) + chunk(b"strf", strf))
    hdrl = riff_list(b"LIST", b"hdrl", chunk(b"avih", avih) + strl)
    shades = [bytes([(40 * i) % 256, 80, 200 - 30 * i]) * (width * height) for i in range(frames)]
    movi_body = b"".join(chunk(b"00db", frame) for frame in shades)
    movi = riff_list(b"LIST", b"movi", movi_body)
    index, offset = b"", 4
    for frame in shades:
        index += struct.pack("<4sIII", b"00db", 0x10, offset, len(frame))
        offset += 8 + len(frame)
    return riff_list(b"RIFF", b"AVI ", hdrl + movi + chunk(b"idx1", index))


def pdf(text: str = "ChatCaptain sandbox document") -> bytes:
    """A one-page PDF with a line of text and a correct xref table."""
    stream = f"BT /F1 18 Tf 40 100 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref,
    )
    return bytes(out)


def build_files() -> dict[str, SandboxFile]:
    """Every file the sandbox serves, by name."""
    return {
        "captain.png": SandboxFile(avatar_png(bg=(20, 60, 120)), "image/png", "image"),
        "first-mate.png": SandboxFile(avatar_png(bg=(160, 60, 20)), "image/png", "image"),
        "harbour.png": SandboxFile(harbour_png(), "image/png", "image"),
        "foghorn.wav": SandboxFile(wav(), "audio/wav", "audio"),
        "waves.avi": SandboxFile(avi(), "video/x-msvideo", "video"),
        "waves.webm": SandboxFile((MEDIA / "waves.webm").read_bytes(), "video/webm", "video"),
        "manifest.pdf": SandboxFile(pdf(), "application/pdf", "document"),
    }
