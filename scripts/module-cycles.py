#!/usr/bin/env python3
"""Finds import cycles between the modules of each workspace crate.

At every level of a crate's module tree the sibling modules form a graph:
A -> B when anything in A (or below it) names B (or something below it)
with a `use crate::...`, `use super::...` or a `crate::`/`super::` path.
A cycle among siblings is reported; a module using its own parent is not a
sibling edge. Exit status 1 when any crate has a cycle.

    scripts/module-cycles.py [ROOT]
"""
import os
import re
import sys

CRATES = {"trickle": "src", "trickle-telemetry": "telemetry/src",
          "trickle-sse": "sse/src", "trickle-load": "loadtest/src",
          "trickle-emulator": "emulator/src", "trickle-protocol": "protocol/src",
          "trickle-fuzz": "fuzz/src"}
PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)*)::\{([^}]*)\}", re.S)


def module_of(src, path):
    """'report/markdown.rs' -> ('report', 'markdown'); 'lib.rs' -> ()."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    # Leave out test modules: they may use anything.
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
    return text[: cut.start()] if cut else text


def targets(module, text):
    """Module paths named from `module`."""
    own = module
    named = []
    for m in GROUP.finditer(text):
        base = m.group(2).split("::")[1:]
        for item in m.group(3).split(","):
            first = item.strip().split("::")[0].split(" ")[0]
            named.append((m.group(1), base + ([first] if first and first != "self" else [])))
    for m in PATH.finditer(text):
        named.append((m.group(1), m.group(2).split("::")[1:]))
    for kind, parts in named:
        if kind == "crate":
            yield tuple(parts)
        else:
            up = 0
            while parts and parts[0] == "super":
                parts, up = parts[1:], up + 1
            parent = own[: len(own) - 1 - up] if len(own) >= 1 + up else ()
            yield parent + tuple(parts)


def cycles(edges):
    """Strongly connected components with more than one node."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def check(root, crate, src):
    src = os.path.join(root, src)
    modules = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                p = os.path.join(dirpath, f)
                modules[module_of(src, p)] = p
    known = set(modules)
    edges = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as fh:
            text = strip(fh.read())
        for target in targets(module, text):
            # The longest known module the path names.
            while target and target not in known:
                target = target[:-1]
            if not target or target == module:
                continue
            # Sibling edge at the level where the two paths part.
            depth = 0
            while depth < min(len(module), len(target)) and module[depth] == target[depth]:
                depth += 1
            if depth == len(module) or depth == len(target):
                continue  # an ancestor or a descendant, not a sibling
            a, b = module[: depth + 1], target[: depth + 1]
            edges.setdefault(a, set()).add(b)
    found = cycles(edges)
    for comp in found:
        names = ", ".join("::".join(c) for c in comp)
        print(f"{crate}: import cycle between {names}")
    return not found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    ok = all([check(root, crate, src) for crate, src in CRATES.items()
              if os.path.isdir(os.path.join(root, src))])
    print("module cycles: none" if ok else "module cycles: found")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
