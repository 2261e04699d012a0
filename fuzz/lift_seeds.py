#!/usr/bin/env python3
"""Writes the seed corpus of the `lift` fuzz target (fuzz/corpus/lift).

Each seed is a request body for tests/plugins/lift: one byte n, n little-endian u16 offsets
of words to relocate (pointers, written as offsets into the data), then the data, whose first
108 bytes are the canonical-ABI return area of result<parse-outcome, plugin-error>.
Run from anywhere: python3 fuzz/lift_seeds.py
"""
import os
import struct

AREA = 108


class Seed:
    def __init__(self):
        self.data = bytearray(AREA)
        self.relocs = []

    def u8(self, at, v):
        self.data[at] = v

    def u16(self, at, v):
        self.data[at:at + 2] = struct.pack("<H", v)

    def u32(self, at, v):
        self.data[at:at + 4] = struct.pack("<I", v)

    def blob(self, raw, align=1):
        while len(self.data) % align:
            self.data.append(0)
        at = len(self.data)
        self.data += raw
        return at

    def ptr(self, at, offset, length):
        """A pointer/length pair at `at`, relocated."""
        self.u32(at, offset)
        self.u32(at + 4, length)
        self.relocs.append(at)

    def string(self, at, text):
        raw = text.encode() if isinstance(text, str) else text
        self.ptr(at, self.blob(raw), len(raw))

    def option_string(self, at, text):
        if text is None:
            self.u8(at, 0)
        else:
            self.u8(at, 1)
            self.string(at + 4, text)

    def bytes(self):
        out = bytearray([len(self.relocs)])
        for r in self.relocs:
            out += struct.pack("<H", r)
        return bytes(out + self.data)


def outcome(disc):
    s = Seed()
    s.u8(0, 0)  # ok
    s.u8(4, disc)  # parse-outcome case
    return s


def ignored():
    s = outcome(1)
    s.string(8, "bot sender")
    return s


def unauthorized():
    s = outcome(3)
    s.string(8, "bad signature")
    return s


def plugin_error():
    s = Seed()
    s.u8(0, 1)  # err
    s.string(4, "invalid_config")
    s.string(12, "the token is missing")
    s.u8(20, 1)
    return s


def headers(s, at, pairs):
    """A list<header> at `at`: 16 bytes per element, strings after the list."""
    first = s.blob(bytes(16 * len(pairs)), align=4)
    for i, (name, value) in enumerate(pairs):
        s.string(first + 16 * i, name)
        s.string(first + 16 * i + 8, value)
    s.ptr(at, first, len(pairs))


def respond():
    s = outcome(2)
    s.u16(8, 200)
    headers(s, 12, [("content-type", "text/plain"), ("x-challenge", "abc")])
    s.string(20, "ok")
    return s


def respond_hostile_headers():
    s = outcome(2)
    s.u16(8, 302)
    headers(s, 12, [("location", "http://evil.test"), ("content-length", "9"),
                    ("set-cookie", "a=b"), ("x-bad", "a\r\nb")])
    s.string(20, b"")
    return s


def work_item(sender=True):
    s = outcome(0)
    s.string(8, "Build failed on main")
    s.string(16, "why did it fail?")
    s.string(24, "github:acme/api#7")
    s.string(32, "acme/api#7")
    if sender:
        s.u8(40, 1)
        s.string(44, "42")
        s.string(52, "octocat")
        s.u8(60, 0)
    s.option_string(64, "/ask")
    s.option_string(76, "delivery-1")
    s.string(88, '{"n":7}')
    s.option_string(96, '{"chat":1}')
    return s


def bad_discriminant():
    s = outcome(9)
    return s


def bad_utf8():
    s = outcome(1)
    s.string(8, b"\xff\xfe\xc3\x28")
    return s


def out_of_bounds():
    s = outcome(1)
    s.u32(8, 0xFFFF_FF00)
    s.u32(12, 64)
    return s


def aliased_headers():
    """Sixty headers whose values all alias one 40 KiB run of the plugin's buffer (2.4 MiB to
    copy, over the transfer limit)."""
    s = outcome(2)
    s.u16(8, 200)
    first = s.blob(bytes(16 * 60), align=4)
    name = s.blob(b"x-h")
    value = s.blob(b"v" * 64)
    for i in range(60):
        s.ptr(first + 16 * i, name, 3)
        s.ptr(first + 16 * i + 8, value, 40 << 10)
    s.ptr(12, first, 60)
    s.string(20, b"")
    return s


SEEDS = {
    "ignored": ignored,
    "unauthorized": unauthorized,
    "plugin-error": plugin_error,
    "respond": respond,
    "respond-hostile-headers": respond_hostile_headers,
    "work-item": work_item,
    "work-item-no-sender": lambda: work_item(sender=False),
    "bad-discriminant": bad_discriminant,
    "bad-utf8": bad_utf8,
    "out-of-bounds": out_of_bounds,
    "aliased-headers": aliased_headers,
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "lift")
    os.makedirs(out, exist_ok=True)
    for name, make in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(make().bytes())
    print(f"{len(SEEDS)} seeds in {out}")
