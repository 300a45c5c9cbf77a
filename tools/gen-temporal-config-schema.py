#!/usr/bin/env python3
"""Regenerate the config.yaml schema embedded in roles/server/files/temporal-config-check.

Usage:
    tools/gen-temporal-config-schema.py [--temporal PATH] [--check | --print]

The schema is the list of keys, nesting and value types that the Temporal server reads from
config.yaml. It comes from two views of the same Go struct, both taken from one `temporal`
binary (the CLI carries the server: `temporal version` names the server release):

1. `temporal server start-dev --log-config` prints the whole config struct the dev server built
   (yaml.v3 marshalled, so every key is spelt as the server spells it). It is the authoritative
   key list, but a pointer left nil prints as `null` (sql.tls, sql.passwordCommand,
   dynamicConfigClient, archival providers, statsd, ...).
2. The Go runtime type descriptors compiled into that same binary. Starting from the type of the
   printed struct (config.Config, recognised by its field tags), this walks every field the way
   gopkg.in/yaml.v3 (the library the server decodes config.yaml with) does: key = yaml tag name
   (case-sensitive), or the lower-cased Go field name without one; `-` skipped; `,inline`
   flattened; types with their own UnmarshalYAML are opaque.

Each key of the print must be found by the walk and each struct the print expands must have
exactly the walked keys; otherwise the script stops, since one of the two readings is wrong.

Schema notation (a Python literal): a dict is a struct (key -> schema); {"*": S} is a map whose
names are chosen by the user; [S] is a list; a string is a scalar: "str", "int", "uint",
"float", "bool", "duration" (a Go duration string such as "5s"), "any" (not checked). A scalar
ending in "!" carries the struct tag validate:"nonzero": the server refuses to start when the
enclosing section is present and this value is missing or zero.

With no option the block between the BEGIN/END GENERATED SCHEMA markers of the validator is
rewritten; --check exits 1 when that block is stale; --print writes the block to stdout.
"""

from __future__ import annotations

import argparse
import os
import pprint
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "roles" / "server" / "files" / "temporal-config-check"
BEGIN = "# --- BEGIN GENERATED SCHEMA"
END = "# --- END GENERATED SCHEMA"

# Go reflect kinds (internal/abi) and type flags.
KIND_NAMES = {
    1: "bool", 2: "int", 3: "int", 4: "int", 5: "int", 6: "int",
    7: "uint", 8: "uint", 9: "uint", 10: "uint", 11: "uint", 12: "uint",
    13: "float", 14: "float", 24: "str",
}
K_ARRAY, K_CHAN, K_FUNC, K_INTERFACE, K_MAP, K_PTR, K_SLICE, K_STRING, K_STRUCT = 17, 18, 19, 20, 21, 22, 23, 24, 25
TFLAG_UNCOMMON, TFLAG_EXTRA_STAR = 1, 2
# Size of the kind-specific type descriptor on amd64/arm64, where the uncommon part follows.
KIND_DESCRIPTOR_SIZE = {K_STRUCT: 80, K_PTR: 56, K_SLICE: 56, K_ARRAY: 72, K_MAP: 112, K_INTERFACE: 80, K_FUNC: 56, K_CHAN: 64}
BASIC_DESCRIPTOR_SIZE = 48


class GoTypes:
    """Just enough of a Go 1.2x ELF binary's runtime type data to walk struct fields."""

    def __init__(self, path: str) -> None:
        self.data = Path(path).read_bytes()
        b = self.data
        if b[:4] != b"\x7fELF" or b[4] != 2:
            sys.exit(f"{path}: not a 64-bit ELF binary")
        shoff = struct.unpack_from("<Q", b, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3A)
        raw = [struct.unpack_from("<IIQQQQ", b, shoff + i * shentsize) for i in range(shnum)]
        stroff = raw[shstrndx][4]
        self.sections = {}
        for name, typ, _flags, addr, off, size in raw:
            label = b[stroff + name : b.index(b"\0", stroff + name)].decode()
            if typ != 8:  # not NOBITS
                self.sections[label] = (addr, off, size)
        # moduledata.types starts at .rodata in the Go linker's ELF layout; typelinks are offsets from it.
        self.types_base = self.sections[".rodata"][0]

    def off(self, va: int) -> int:
        for addr, off, size in self.sections.values():
            if addr <= va < addr + size and off:
                return va - addr + off
        raise ValueError(f"address {va:#x} is not in the file")

    def u8(self, va: int) -> int:
        return self.data[self.off(va)]

    def u16(self, va: int) -> int:
        return struct.unpack_from("<H", self.data, self.off(va))[0]

    def u32(self, va: int) -> int:
        return struct.unpack_from("<I", self.data, self.off(va))[0]

    def i32(self, va: int) -> int:
        return struct.unpack_from("<i", self.data, self.off(va))[0]

    def u64(self, va: int) -> int:
        return struct.unpack_from("<Q", self.data, self.off(va))[0]

    def varint(self, va: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            c = self.u8(va)
            va += 1
            value |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return value, va

    def name(self, va: int) -> tuple[str, str, int]:
        """abi.Name: flags byte, varint length, bytes, [varint tag length, tag]."""
        flags = self.u8(va)
        n, p = self.varint(va + 1)
        text = self.data[self.off(p) : self.off(p) + n].decode()
        tag = ""
        if flags & 2:
            tn, p2 = self.varint(p + n)
            tag = self.data[self.off(p2) : self.off(p2) + tn].decode()
        return text, tag, flags

    def kind(self, t: int) -> int:
        return self.u8(t + 23) & 0x1F

    def type_name(self, t: int) -> str:
        text = self.name(self.types_base + self.i32(t + 40))[0]
        return text[1:] if self.u8(t + 20) & TFLAG_EXTRA_STAR else text

    def elem(self, t: int) -> int:
        return self.u64(t + 48)

    def map_key_elem(self, t: int) -> tuple[int, int]:
        return self.u64(t + 48), self.u64(t + 56)

    def fields(self, t: int) -> list[tuple[str, str, int, int]]:
        ptr, n = self.u64(t + 56), self.u64(t + 64)
        out = []
        for i in range(n):
            f = ptr + 24 * i
            name, tag, flags = self.name(self.u64(f))
            out.append((name, tag, flags, self.u64(f + 8)))
        return out

    def methods(self, t: int) -> set[str]:
        if not self.u8(t + 20) & TFLAG_UNCOMMON:
            return set()
        u = t + KIND_DESCRIPTOR_SIZE.get(self.kind(t), BASIC_DESCRIPTOR_SIZE)
        count, moff = self.u16(u + 4), self.u32(u + 8)
        return {self.name(self.types_base + self.i32(u + moff + 16 * i))[0] for i in range(count)}

    def ptr_to(self, t: int) -> int | None:
        off = self.i32(t + 44)
        return self.types_base + off if off else None

    def all_methods(self, t: int) -> set[str]:
        found = self.methods(t)
        p = self.ptr_to(t)
        if p is not None:
            found |= self.methods(p)
        return found

    def typelinks(self):
        _addr, off, size = self.sections[".typelink"]
        for i in range(size // 4):
            yield self.types_base + struct.unpack_from("<i", self.data, off + 4 * i)[0]


def yaml_key(field_name: str, tag: str) -> tuple[str | None, bool]:
    """The key yaml.v3 decodes a field from, and whether it is inlined (None: never decoded)."""
    m = re.search(r'(?:^|\s)yaml:"([^"]*)"', tag)
    value = m.group(1) if m else ("" if ":" in tag else tag)
    if value == "-":
        return None, False
    name, *flags = value.split(",")
    return (name or field_name.lower()), "inline" in flags


class Walker:
    def __init__(self, go: GoTypes) -> None:
        self.go = go
        self.stack: list[int] = []

    def schema(self, t: int):
        go = self.go
        kind = go.kind(t)
        if kind == K_PTR:
            return self.schema(go.elem(t))
        methods = go.all_methods(t)
        if "UnmarshalYAML" in methods:
            return "any"
        if go.type_name(t) == "time.Duration":
            return "duration"
        if "UnmarshalText" in methods:
            return "str"
        if kind in KIND_NAMES:
            return KIND_NAMES[kind]
        if kind in (K_SLICE, K_ARRAY):
            return [self.schema(go.elem(t))]
        if kind == K_MAP:
            key, elem = go.map_key_elem(t)
            return {"*": self.schema(elem)} if go.kind(key) == K_STRING else "any"
        if kind == K_STRUCT:
            if t in self.stack:
                return "any"
            self.stack.append(t)
            try:
                return self.struct(t)
            finally:
                self.stack.pop()
        return "any"

    def struct(self, t: int) -> dict:
        out: dict = {}
        for name, tag, flags, ft in self.go.fields(t):
            exported, embedded = flags & 1, flags & 8
            if not exported and not embedded:
                continue
            key, inline = yaml_key(name, tag)
            if key is None:
                continue
            sub = self.schema(ft)
            if re.search(r'validate:"[^"]*\bnonzero\b', tag) and isinstance(sub, str):
                sub += "!"
            if inline:
                if isinstance(sub, dict) and "*" not in sub:
                    out.update(sub)
                else:
                    out["*"] = sub["*"] if isinstance(sub, dict) else "any"
                continue
            out[key] = sub
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def printed_config(temporal: str) -> dict:
    """Start the dev server with --log-config, keep what it printed, stop it."""
    with tempfile.TemporaryDirectory() as tmp:
        err_path = Path(tmp) / "stderr"
        cmd = [temporal, "server", "start-dev", "--headless", "--log-config", "--ip", "127.0.0.1",
               "--port", str(free_port()), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
               "--db-filename", str(Path(tmp) / "dev.db"), "--log-level", "error"]
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
            try:
                deadline = time.monotonic() + 60
                for line in proc.stdout:  # the banner comes after the config was printed
                    if line.startswith("Temporal Server:") or time.monotonic() > deadline:
                        break
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        text = err_path.read_text()
    # The struct comes first; anything after the last top-level key of the print is log output.
    lines = []
    for line in text.splitlines():
        if line and not line.startswith(" ") and not re.match(r"^[A-Za-z]+:( |$)", line):
            break
        lines.append(line)
    doc = yaml.safe_load("\n".join(lines))
    if not isinstance(doc, dict) or "persistence" not in doc:
        sys.exit(f"{temporal} server start-dev --log-config printed no config struct:\n{text[:2000]}")
    return doc


def find_config_type(go: GoTypes, top_keys: set[str]) -> int:
    for t in go.typelinks():
        try:
            if go.kind(t) != K_PTR or go.type_name(t) != "*config.Config":
                continue
            st = go.elem(t)
            keys = {yaml_key(n, tag)[0] for n, tag, _f, _t in go.fields(st)}
        except (ValueError, IndexError, UnicodeDecodeError):
            continue
        if keys == top_keys:
            return st
    sys.exit(f"no config.Config type with the keys {sorted(top_keys)} in the binary")


def cross_check(printed, schema, path="") -> list[str]:
    """Every printed key is in the schema; every struct the print expands has the schema's keys."""
    problems = []
    if isinstance(printed, dict):
        if isinstance(schema, dict) and "*" in schema:
            for k, v in printed.items():
                problems += cross_check(v, schema["*"], f"{path}.{k}")
        elif isinstance(schema, dict):
            if set(printed) != set(schema):
                problems.append(f"{path or '<root>'}: printed {sorted(printed)} but the type has {sorted(schema)}")
            for k, v in printed.items():
                if k in schema:
                    problems += cross_check(v, schema[k], f"{path}.{k}".lstrip("."))
        elif schema != "any":
            problems.append(f"{path}: printed a mapping, the type says {schema!r}")
    elif isinstance(printed, list):
        if isinstance(schema, list):
            for i, v in enumerate(printed):
                problems += cross_check(v, schema[0], f"{path}[{i}]")
        elif schema != "any":
            problems.append(f"{path}: printed a list, the type says {schema!r}")
    return problems


def render_block(schema: dict, version: str) -> str:
    server = re.search(r"Server ([0-9][0-9.]*)", version)
    body = pprint.pformat(schema, indent=1, width=120, sort_dicts=True, compact=True)
    return "\n".join([
        BEGIN,
        "# Generated by tools/gen-temporal-config-schema.py; do not edit by hand, rerun it.",
        f"# Source: `{version}`: the config struct printed by",
        "# `temporal server start-dev --log-config`, with the fields left nil there (sql.tls,",
        "# sql.passwordCommand, dynamicConfigClient, archival providers, ...) completed from the Go type",
        "# descriptors of the same binary. Keys as gopkg.in/yaml.v3 matches them: exact, case-sensitive.",
        "# Notation: a dict is a struct (key -> schema), {'*': S} a map of names the user chooses, [S] a list;",
        "# scalars: str, int, uint, float, bool, duration (a Go duration string), any (not checked);",
        "# a trailing '!' marks validate:\"nonzero\" (the server refuses a missing or zero value).",
        f"SERVER_VERSION = {(server.group(1) if server else version)!r}",
        f"SCHEMA = {body}",
        END,
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temporal", default=shutil.which("temporal") or str(Path(sys.executable).parent / "temporal"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when the embedded schema is stale")
    mode.add_argument("--print", action="store_true", help="print the generated block")
    args = parser.parse_args()
    if not os.access(args.temporal, os.X_OK):
        sys.exit(f"no temporal binary at {args.temporal} (pass --temporal)")

    version = subprocess.run([args.temporal, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    printed = printed_config(args.temporal)
    go = GoTypes(args.temporal)
    schema = Walker(go).struct(find_config_type(go, set(printed)))
    problems = cross_check(printed, schema)
    if problems:
        sys.exit("the printed struct and the type descriptors disagree:\n  " + "\n  ".join(problems))

    block = render_block(schema, version)
    if args.print:
        print(block)
        return 0
    text = VALIDATOR.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + block + text[end:]
    if args.check:
        if new != text:
            print(f"{VALIDATOR.relative_to(ROOT)}: the embedded schema is stale; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    VALIDATOR.write_text(new)
    print(f"wrote the schema of {version} into {VALIDATOR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
