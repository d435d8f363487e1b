#!/usr/bin/env python3
"""Checks that the server crate's top-level modules depend on each other only downwards.

ARCHITECTURE.md draws the layers; the table ALLOWED below is the same picture as data and is
what this check enforces. For every .rs file under server/src the script finds the top-level
module the file belongs to (server/src/warehouse/bigquery/sql.rs belongs to `warehouse`,
server/src/error.rs to `error`, server/src/main.rs to the binary `main`) and collects the
crate-internal modules it depends on:

  * `use crate::X...` and `crate::X::...` paths anywhere in code, including use-trees such as
    `use crate::{X::a, Y}`;
  * `super::` paths that climb out of a top-level module to the crate root
    (`super::super::X` from server/src/a/b.rs names `X`);
  * in the binary (main.rs), `ferry_server::X` paths, the binary's way to name the library.

Comments, string literals (plain, byte and raw) and char literals are skipped. Names the crate
root re-exports (`pub use config::Config;` in lib.rs) count as their defining module. A module
may always use anything in its own subtree; `#[cfg(test)]` modules count like any other code.

It then reports:

  * every import the table does not allow, as
    `file:line: module A may not import module B (allowed: ...)`;
  * every cycle in the actual module graph (whether or not the table allows its edges);
  * modules found in the source that the table does not know (a new module must be placed).

Exit status: 0 when the code conforms, 1 on any violation or cycle, 2 on a usage error or an
inconsistent table.

    python3 scripts/check-layers.py            # the check CI runs
    python3 scripts/check-layers.py --graph    # the actual edges, with where each comes from
    python3 scripts/check-layers.py --layers   # the table's layers, lowest first
    python3 scripts/check-layers.py --dot      # the actual graph for Graphviz

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict

# ---------------------------------------------------------------------------------------------
# The allowed layering: module -> the top-level modules it may import. Lowest layer first.
# A module may always import its own subtree. Keep this in step with ARCHITECTURE.md.
# ---------------------------------------------------------------------------------------------

# Cross-cutting primitives: no domain knowledge, usable from every layer above.
FOUNDATION = {"error", "secret", "crash_point", "keyed_lock", "telemetry", "clock"}
# Pure domain: what a dataset is, who may do what with it.
DOMAIN = FOUNDATION | {"contract", "governance"}
# Backends: storage of state (registry) and of data (warehouse). Peers: neither imports the other.
BACKENDS = DOMAIN | {"registry", "warehouse", "notify"}
# Everything below the use cases.
BELOW_SERVICE = BACKENDS | {"ingest"}
# Everything below the adapters and the composition root.
BELOW_ADAPTERS = BELOW_SERVICE | {"service"}

ALLOWED: dict[str, set[str]] = {
    # Layer 0: the one error type. Imports nothing of Ferry's.
    "error": set(),
    # Layer 1: primitives that may name the error type.
    "secret": {"error"},
    "crash_point": {"error"},
    "keyed_lock": {"error"},
    "clock": set(),
    "telemetry": {"error"},
    # Layer 2: dataset contracts (YAML, validation, evolution, view filters).
    "contract": FOUNDATION,
    # Layer 3: authn/authz/grants/masking/pseudonymization/audit types. Reaches stored tokens
    # through a trait it owns, never through the registry.
    "governance": FOUNDATION | {"contract"},
    # Layer 4: the backends. The registry stores governance's records; the warehouse masks
    # with governance's rules. Neither knows the other, nor ingest, nor the use cases.
    "registry": DOMAIN,
    "warehouse": DOMAIN,
    # Outgoing notifications (webhooks): knows events, not datasets or the registry.
    "notify": FOUNDATION,
    # Layer 5: the publish data path, writing into the warehouse's PartitionSink trait.
    "ingest": DOMAIN | {"warehouse"},
    # Layer 6: the use cases: validate, authorize, act.
    "service": BELOW_SERVICE,
    # Layer 7: the gRPC adapters, and the configuration that composes every module's settings.
    # Peers: neither imports the other.
    "grpc": BELOW_ADAPTERS,
    "config": BELOW_ADAPTERS,
    # Layer 8: assembles and runs the server.
    "server": BELOW_ADAPTERS | {"grpc", "config"},
    # Layer 9: the binary.
    "main": BELOW_ADAPTERS | {"grpc", "config", "server"},
}

# Where the crate lives, relative to the repository root (this script's parent's parent).
DEFAULT_SRC = os.path.join("server", "src")
# The library's crate name, as the binary spells it.
DEFAULT_LIB_NAME = "ferry_server"

# ---------------------------------------------------------------------------------------------
# Lexing: just enough Rust to see paths and braces, and to skip comments and literals.
# ---------------------------------------------------------------------------------------------

IDENT_START = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
IDENT_CHARS = re.compile(r"[A-Za-z0-9_\u0080-\U0010ffff]*")
RAW_STRING = re.compile(r'(?:br|cr|r)(#*)"')
PLAIN_STRING = re.compile(r'(?:b|c)?"')
# Keywords that may come right before a path with a leading `::` (`use ::x`, `as ::x`).
KEYWORDS = {
    "as", "box", "break", "const", "dyn", "else", "for", "if", "impl", "in", "let", "match",
    "move", "mut", "pub", "ref", "return", "static", "type", "unsafe", "use", "where", "while",
    "yield",
}


class Token:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind: str, text: str, line: int):
        self.kind = kind  # "ident", "punct"
        self.text = text
        self.line = line

    def __repr__(self) -> str:
        return f"{self.kind}:{self.text}@{self.line}"


def tokenize(src: str) -> list[Token]:
    """Identifiers and the punctuation that matters (`::`, braces, parens, `,`, `;`, `*`, `$`),
    with their line numbers. Comments and literals produce no tokens."""
    tokens: list[Token] = []
    i, n, line = 0, len(src), 1
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            end = src.find("\n", i)
            i = n if end < 0 else end
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += src[i] == "\n"
                    i += 1
        elif (m := RAW_STRING.match(src, i)) and not _ident_char_before(src, i):
            closing = '"' + m.group(1)
            end = src.find(closing, m.end())
            end = n if end < 0 else end + len(closing)
            line += src.count("\n", i, end)
            i = end
        elif (m := PLAIN_STRING.match(src, i)) and not _ident_char_before(src, i):
            j = m.end()
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            line += src.count("\n", i, j)
            i = j + 1
        elif c == "b" and src.startswith("b'", i) and not _ident_char_before(src, i):
            i = _skip_char_literal(src, i + 1)
        elif c == "'":
            i = _skip_char_literal_or_lifetime(src, i)
        elif src.startswith("r#", i) and IDENT_START.match(src, i + 2):
            m = IDENT_CHARS.match(src, i + 3)
            tokens.append(Token("ident", src[i + 2 : m.end()], line))
            i = m.end()
        elif IDENT_START.match(c):
            m = IDENT_CHARS.match(src, i + 1)
            tokens.append(Token("ident", src[i : m.end()], line))
            i = m.end()
        elif c.isdigit():
            # A number, with its suffix (1u64, 0x1f, 1e9); `1.0` leaves `.0` harmlessly.
            m = re.compile(r"[0-9A-Za-z_]*").match(src, i)
            i = m.end()
        elif src.startswith("::", i):
            tokens.append(Token("punct", "::", line))
            i += 2
        elif c in "{}(),;*$<>#[]":
            tokens.append(Token("punct", c, line))
            i += 1
        else:
            i += 1
    return tokens


def _ident_char_before(src: str, i: int) -> bool:
    """Whether src[i] continues an identifier (`abr"` is not a raw string's start)."""
    return i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_")


def _skip_char_literal(src: str, i: int) -> int:
    """src[i] is the opening quote of a char literal; returns the index after it."""
    j = i + 1
    if j < len(src) and src[j] == "\\":
        j += 2
        while j < len(src) and src[j] != "'" and src[j] != "\n":
            j += 1
    else:
        j += 1
    return j + 1 if j < len(src) and src[j] == "'" else j


def _skip_char_literal_or_lifetime(src: str, i: int) -> int:
    """`'a'`, `'\\n'`, `'\\u{1F600}'` are char literals; `'a`, `'static` are lifetimes (whose name
    is no path, so it is skipped too)."""
    if i + 1 < len(src) and src[i + 1] == "\\":
        return _skip_char_literal(src, i)
    if i + 2 < len(src) and src[i + 2] == "'":
        return i + 3
    m = IDENT_CHARS.match(src, i + 1)
    return m.end()


# ---------------------------------------------------------------------------------------------
# Finding dependencies.
# ---------------------------------------------------------------------------------------------


class Use:
    """One reference from a file to another top-level module."""

    __slots__ = ("file", "line", "source", "target", "path")

    def __init__(self, file: str, line: int, source: str, target: str, path: str):
        self.file = file  # as shown in messages
        self.line = line
        self.source = source  # the importing top-level module
        self.target = target  # the imported top-level module
        self.path = path  # the path as written, e.g. crate::ingest::RowError


def module_path_of(rel: str) -> tuple[list[str], bool]:
    """The module path of a file relative to src/ and whether it belongs to a binary.
    `warehouse/bigquery/mod.rs` -> (["warehouse", "bigquery"], False); `lib.rs` -> ([], False);
    `main.rs` -> (["main"], True); `bin/x.rs` and `bin/x/main.rs` -> (["x"], True)."""
    parts = rel.replace(os.sep, "/")[: -len(".rs")].split("/")
    if parts == ["lib"]:
        return [], False
    if parts == ["main"]:
        return ["main"], True
    is_bin = parts[0] == "bin" and len(parts) > 1
    if is_bin:
        parts = parts[1:]
        if len(parts) == 2 and parts[1] == "main":
            parts.pop()
    if len(parts) > 1 and parts[-1] == "mod":
        parts.pop()
    return parts, is_bin


def parse_path(tokens: list[Token], i: int) -> tuple[list[tuple[str, int, str]], int]:
    """tokens[i] starts the part of a path after its root (`crate::`). Returns the first segments
    it names, each with its line and a readable path (several for a use-tree `{a::x, b}`),
    and the index after the path."""
    n = len(tokens)
    if i < n and tokens[i].text == "{":
        found = []
        depth, j, at_item_start = 1, i + 1, True
        while j < n and depth:
            t = tokens[j]
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                depth -= 1
            elif t.text == "," and depth == 1:
                at_item_start = True
                j += 1
                continue
            elif depth == 1 and at_item_start and t.kind == "ident":
                rest = _segments(tokens, j)
                found.append((t.text, t.line, "::".join(rest)))
            at_item_start = False
            j += 1
        return found, j
    if i < n and tokens[i].kind == "ident":
        rest = _segments(tokens, i)
        return [(tokens[i].text, tokens[i].line, "::".join(rest))], i + 1
    return [], i


def _segments(tokens: list[Token], i: int) -> list[str]:
    """The segments of the path starting at tokens[i], for messages; a use-tree `{..}` is shown
    with its contents (shortened)."""
    out = [tokens[i].text]
    j = i + 1
    while j + 1 < len(tokens) and tokens[j].text == "::":
        nxt = tokens[j + 1]
        if nxt.kind == "ident":
            out.append(nxt.text)
            j += 2
            continue
        if nxt.text == "*":
            out.append("*")
        elif nxt.text == "{":
            depth, k, text = 0, j + 1, ""
            while k < len(tokens):
                tok = tokens[k].text
                depth += (tok == "{") - (tok == "}")
                text += tok + (" " if tok == "," else "")
                k += 1
                if depth == 0:
                    break
            out.append(text if len(text) <= 60 else text[:56] + " ..}")
        break
    return out


def root_reexports(lib_tokens: list[Token], modules: set[str]) -> dict[str, str]:
    """Names the crate root re-exports from a module: `pub use config::Config;` and
    `pub use error::{FerryError, Result as FerryResult};` make `crate::Config` mean `config`."""
    names: dict[str, str] = {}
    i, n = 0, len(lib_tokens)
    while i < n:
        if lib_tokens[i].text != "use":
            i += 1
            continue
        j = i + 1
        if j + 1 < n and lib_tokens[j].text in ("crate", "self") and lib_tokens[j + 1].text == "::":
            j += 2
        end = j
        while end < n and lib_tokens[end].text != ";":
            end += 1
        if j < n and lib_tokens[j].text in modules:
            stmt = [t.text for t in lib_tokens[j:end]] + [";"]
            # The name each leaf binds: the identifier before `,`, `}` or `;` (after `as`, the
            # rename), except `self` and `*`.
            for k in range(1, len(stmt)):
                if stmt[k] in (",", "}", ";") and re.fullmatch(r"\w+", stmt[k - 1]):
                    if stmt[k - 1] != "self":
                        names[stmt[k - 1]] = lib_tokens[j].text
        i = end + 1
    return names


def scan_file(
    rel: str,
    tokens: list[Token],
    modules: set[str],
    reexports: dict[str, str],
    lib_name: str,
) -> list[Use]:
    """The references in one file to other top-level modules."""
    file_path, is_bin = module_path_of(rel)
    if not file_path:
        return []  # lib.rs only declares the modules and re-exports.
    own = file_path[0]
    uses: list[Use] = []
    inline: list[tuple[str, int]] = []  # inline `mod name {` blocks: (name, depth outside)
    depth = 0

    def resolve(name: str) -> str | None:
        if name in modules:
            return name
        return reexports.get(name)

    def record(found, root_text):
        for name, line, path in found:
            target = resolve(name)
            if target is not None and target != own:
                uses.append(Use(rel, line, own, target, f"{root_text}::{path}"))

    n = len(tokens)
    i = 0
    while i < n:
        t = tokens[i]
        prev = tokens[i - 1].text if i else ""
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
            if inline and inline[-1][1] == depth:
                inline.pop()
        elif (
            t.text == "mod"
            and i + 2 < n
            and tokens[i + 1].kind == "ident"
            and tokens[i + 2].text == "{"
        ):
            inline.append((tokens[i + 1].text, depth))
        elif t.kind == "ident" and i + 1 < n and tokens[i + 1].text == "::" and prev != "$":
            # A path's root, not a later segment: `use ::ferry_server::x` is one, `a::b::x` is not.
            starts_path = prev != "::" or i < 2 or (
                tokens[i - 2].text in KEYWORDS
                or (tokens[i - 2].kind != "ident" and tokens[i - 2].text not in (">", ")"))
            )
            if t.text == "crate" and prev != "::" and not is_bin:
                found, _ = parse_path(tokens, i + 2)
                record(found, "crate")
            elif t.text == lib_name and is_bin and starts_path:
                found, _ = parse_path(tokens, i + 2)
                record(found, lib_name)
            elif t.text == "super" and prev != "::" and not is_bin:
                here = file_path + [name for name, _ in inline]
                j, climbs = i, 0
                while j + 1 < n and tokens[j].text == "super" and tokens[j + 1].text == "::":
                    climbs += 1
                    j += 2
                if climbs == len(here):  # climbed out to the crate root
                    found, _ = parse_path(tokens, j)
                    record(found, "::".join(["super"] * climbs))
                i = j
                continue
        i += 1
    return uses


def collect(src_root: str, shown_as: str, lib_name: str) -> tuple[list[Use], set[str], list[str]]:
    """All references between top-level modules under src_root (file names shown under
    `shown_as`), the top-level modules seen, and the files read."""
    files = []
    for dirpath, dirnames, filenames in os.walk(src_root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".rs"):
                files.append(os.path.relpath(os.path.join(dirpath, name), src_root))
    modules = {path[0] for path, _ in map(module_path_of, files) if path}
    tokenized = {}
    for rel in files:
        with open(os.path.join(src_root, rel), encoding="utf-8") as f:
            tokenized[rel] = tokenize(f.read())
    reexports = root_reexports(tokenized.get("lib.rs", []), modules)
    uses: list[Use] = []
    for rel in files:
        for use in scan_file(rel, tokenized[rel], modules, reexports, lib_name):
            use.file = os.path.join(shown_as, rel)
            uses.append(use)
    return uses, modules, files


# ---------------------------------------------------------------------------------------------
# Graphs.
# ---------------------------------------------------------------------------------------------


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively; components of more than one module (or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    out.append(sorted(component))
    return sorted(out)


def shortest_cycle_through(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest cycle start -> ... -> start inside `within` (breadth first)."""
    parent = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in within:
                    continue
                if child == start:
                    path = [node]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return list(reversed(path)) + [start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    return []


def cycles_of(graph: dict[str, set[str]]) -> list[tuple[list[str], list[list[str]]]]:
    """Each cyclic component with the distinct shortest cycles through its members."""
    found = []
    for component in strongly_connected(graph):
        members = set(component)
        seen, cycles = set(), []
        for node in component:
            cycle = shortest_cycle_through(graph, node, members)
            key = frozenset(zip(cycle, cycle[1:]))
            if cycle and key not in seen:
                seen.add(key)
                cycles.append(cycle)
        found.append((component, cycles))
    return found


def levels(table: dict[str, set[str]]) -> dict[str, int]:
    """Each module's layer: 0 when it may import nothing, else one above its highest allowed."""
    memo: dict[str, int] = {}

    def level(module: str, trail: tuple[str, ...]) -> int:
        if module in memo:
            return memo[module]
        if module in trail:
            raise ValueError(" -> ".join(trail + (module,)))
        below = [level(m, trail + (module,)) for m in table.get(module, ()) if m != module]
        memo[module] = 1 + max(below) if below else 0
        return memo[module]

    for module in table:
        level(module, ())
    return memo


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Check that server modules import only along the allowed layers.",
    )
    parser.add_argument("--src", help=f"the crate's src directory [default: <repo>/{DEFAULT_SRC}]")
    parser.add_argument("--lib-name", default=DEFAULT_LIB_NAME, help="the library's crate name as the binary spells it")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--graph", action="store_true", help="print the actual dependency edges and where they come from")
    mode.add_argument("--dot", action="store_true", help="print the actual dependency graph in Graphviz dot")
    mode.add_argument("--layers", action="store_true", help="print the allowed layering, lowest layer first")
    args = parser.parse_args(argv)

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src_root = args.src or os.path.join(repo, DEFAULT_SRC)
    if not os.path.isdir(src_root):
        print(f"check-layers: no source directory {src_root}", file=sys.stderr)
        return 2

    try:
        layer_of = levels(ALLOWED)
    except ValueError as cycle:
        print(f"check-layers: the ALLOWED table itself has a cycle: {cycle}", file=sys.stderr)
        return 2

    if args.layers:
        by_level = defaultdict(list)
        for module, lvl in layer_of.items():
            by_level[lvl].append(module)
        for lvl in sorted(by_level):
            print(f"{lvl}: {', '.join(sorted(by_level[lvl]))}")
        return 0

    # File names relative to the repository root when the sources are inside it.
    src_root = os.path.abspath(src_root)
    shown_as = os.path.relpath(src_root, repo)
    if shown_as.startswith(".."):
        shown_as = src_root
    uses, modules, files = collect(src_root, shown_as, args.lib_name)

    edges: dict[tuple[str, str], list[Use]] = defaultdict(list)
    for use in uses:
        edges[(use.source, use.target)].append(use)
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)

    if args.graph:
        for (source, target), where in sorted(edges.items()):
            verdict = "ok" if target in ALLOWED.get(source, set()) else "VIOLATION"
            print(f"{source} -> {target}  [{verdict}, {len(where)} reference(s)]")
            seen = set()
            for use in where:
                key = (use.file, use.line, use.path)
                if key not in seen:
                    seen.add(key)
                    print(f"    {use.file}:{use.line}: {use.path}")
        return 0

    if args.dot:
        print("digraph ferry_modules {")
        print("  rankdir=BT; node [shape=box];")
        for (source, target), where in sorted(edges.items()):
            style = "" if target in ALLOWED.get(source, set()) else ' [color=red, penwidth=2]'
            print(f'  "{source}" -> "{target}"{style};')
        print("}")
        return 0

    failures = 0
    for module in sorted(modules - set(ALLOWED)):
        print(f"{module}: module {module} is not in the layering table (place it in ALLOWED in scripts/check-layers.py and in ARCHITECTURE.md)")
        failures += 1
    reported = set()
    for use in sorted(uses, key=lambda u: (u.file, u.line, u.target)):
        allowed = ALLOWED.get(use.source)
        if allowed is None or use.target in allowed:
            continue
        key = (use.file, use.line, use.target)
        if key in reported:
            continue
        reported.add(key)
        listed = ", ".join(sorted(allowed)) or "nothing"
        print(f"{use.file}:{use.line}: module {use.source} may not import module {use.target} (allowed: {listed}) [{use.path}]")
        failures += 1
    for component, cycles in cycles_of(graph):
        print(f"cycle between modules {', '.join(component)}:")
        for cycle in cycles:
            print(f"    {' -> '.join(cycle)}")
        failures += 1

    stale = sorted(m for m in ALLOWED if m not in modules)
    if stale:
        print(f"note: the layering table names modules not in the source: {', '.join(stale)}", file=sys.stderr)
    if failures:
        print(f"check-layers: {failures} problem(s) in {len(files)} files; the layers are drawn in ARCHITECTURE.md", file=sys.stderr)
        return 1
    print(f"check-layers: {len(files)} files, {len(edges)} module dependencies, all along the allowed layers")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # `--graph | head`
        sys.stderr.close()
        sys.exit(1)
