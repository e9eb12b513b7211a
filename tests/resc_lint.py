"""A reading of a generated .resc the way Renode's monitor reads it, for the tests: variables
(``$name=value``, ``$name?=value``, ``$ORIGIN`` the script's folder) are expanded only where a
token starts with ``$``; a token starting with ``@`` is a literal path, so ``@$ORIGIN/x`` names
a file called ``$ORIGIN/x``. Written from Renode's documented behaviour and the failure seen in
Renode 1.14 (``File does not exist: $ORIGIN/firmware.elf``), not from Renode's code."""
from __future__ import annotations

import re
from pathlib import Path

_ASSIGN = re.compile(r"^\$(\w+)\??=(\S+)\s*$")
_VAR = re.compile(r"^\$(\w+)(.*)$")


def _expand(token: str, variables: dict[str, str], problems: list[str], where: str) -> str:
    if token.startswith("@"):
        if "$" in token:
            problems.append(f"{where}: '{token}' is a literal path: Renode does not expand the '$' after '@'")
        return token[1:]
    m = _VAR.match(token)
    if not m:
        return token
    if m.group(1) not in variables:
        problems.append(f"{where}: ${m.group(1)} is used before it is defined")
        return token
    return variables[m.group(1)] + m.group(2)


def check(resc: Path, writes: tuple[str, ...] = ()) -> list[str]:
    """Problems of ``resc``: undefined or unexpanded variables, files that are not in its folder
    (``writes``: the files the script creates, which must not exist yet but whose folder must)."""
    variables = {"ORIGIN": str(resc.parent.resolve())}
    problems: list[str] = []
    string = None  # inside a multi-line string: "macro" (commands, run later) or "data"
    previous = ""
    for n, line in enumerate(resc.read_text().splitlines(), 1):
        where = f"{resc.name}:{n}"
        opens_macro = line.lstrip().startswith("macro") or (line.strip() == '"""' and previous.startswith("macro"))
        if line.strip():
            previous = line.strip()
        if line.count('"""') % 2:
            string = None if string else ("macro" if opens_macro else "data")
            continue
        if string == "data" or not line.strip() or line.lstrip().startswith(("#", ":", "runMacro")):
            continue
        m = _ASSIGN.match(line.strip())
        if m:
            variables[m.group(1)] = _expand(m.group(2), variables, problems, where)
            continue
        for token in line.split()[1:]:
            value = _expand(token, variables, problems, where)
            if token.startswith(("$", "@")):
                path = Path(value)
                if path.name in writes:
                    if not path.parent.is_dir():
                        problems.append(f"{where}: {token} is written into a folder that does not exist")
                elif not path.is_file() or path.parent != resc.parent.resolve():
                    problems.append(f"{where}: {token} is {value}, not a file in the build folder")
    return problems
