#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a cycle.

Crates already depend on each other one way (Cargo enforces it); this
checks the same inside each crate. A module is a file under `src/`; an
edge a -> b is any `crate::…`, `super::…` or `child::…` path in a's text (outside its
`#[cfg(test)] mod tests`) naming b or something inside b. References to a
module's own ancestors are not edges (a child may use its parent's items).
Rough by design (text, not a parser), so it errs towards reporting.
"""
import os
import re
import sys

CRATES = ["fec", "flute", "origin", "unicast-repair", "peer", "delta", "."]
PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")
# A path that starts at a child module (`child::item` in the parent).
RELATIVE = re.compile(r"(?<![\w:])(\w+)((?:::\w+)+)")


def module_of(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def graph_of(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                files[module_of(src, path)] = path
    graph = {m: set() for m in files}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = re.split(r"#\[cfg\(test\)\]\s*mod tests", f.read())[0]
        paths = []
        for kind, tail in PATH.findall(text):
            base = () if kind == "crate" else module[:-1]
            paths.append(base + tuple(tail.strip(":").split("::")))
        for head, tail in RELATIVE.findall(text):
            if module + (head,) in files:
                paths.append(module + (head,) + tuple(tail.strip(":").split("::")))
        for full in paths:
            for i in range(len(full), 0, -1):
                target = full[:i]
                if target in files:
                    if module[: len(target)] != target:
                        graph[module].add(target)
                    break
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(100000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main():
    bad = 0
    for crate in CRATES:
        src = os.path.join(crate, "src")
        if not os.path.isdir(src):
            continue
        for component in cycles(graph_of(src)):
            bad += 1
            names = sorted("::".join(m) or "(root)" for m in component)
            print(f"{crate}: modules import each other in a cycle: {', '.join(names)}")
    if bad:
        sys.exit(1)
    print("no module cycles")


if __name__ == "__main__":
    main()
