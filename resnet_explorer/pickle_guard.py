"""Check a pickle's opcodes before anything unpickles it: bounded work, whatever the bytes ask for.

`weights_only=True` (and the CIFAR reader's restricted unpickler) decide which *globals* a pickle may
name, so nothing in it runs. They do not bound the *work* the objects cost. A pickle's memo lets one
object be referenced many times, so 330 bytes can describe a 64-deep DAG of tuples whose every level
holds the one below twice: it unpickles in microseconds, but hashing it (as a dict key, which the
unpickler does at once) visits 2^64 nodes, and so would printing it or comparing it.

`check_pickle` walks the opcodes (`pickletools.genops`, which decodes and executes nothing) and keeps,
for every object on the unpickler's stack and in its memo, two numbers: how many nodes it expands to
when every reference is followed, and how deeply it nests. A state dict expands to a few dozen nodes
per tensor and nests about five deep; a pickle is refused as soon as one object expands past
`MAX_PICKLE_NODES` or nests past `MAX_PICKLE_DEPTH`. The counts are exact because a container may
only be filled before another object takes it in: a pickle that fills a container after it was
placed elsewhere (the only way to make the counts lag, and a self-reference a state dict never
holds) is refused too, as are opcodes a state dict or a CIFAR batch never uses (extension
registry, out-of-band buffers, the class-instantiating INST/OBJ).

`check_torch_file` applies it to what `torch.load` would unpickle: every ``.pkl`` member of a
torch.save zip archive, or the five pickles a legacy-format file starts with.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

from .limits import MAX_PICKLE_BYTES, MAX_PICKLE_DEPTH, MAX_PICKLE_NODES

__all__ = ["Malformed", "Refused", "check_pickle", "check_torch_file"]

_LEGACY_PICKLES = 5  # torch's legacy format: magic number, protocol, system info, the object, storage keys

# Opcodes whose objects hold others that were made before (their items, or their callable and arguments)
# are handled generically from pickletools' stack descriptions; these are the exceptions.
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_FILL = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}  # target below n items it takes in
_FILL_MARKED = {"APPENDS", "SETITEMS", "ADDITEMS"}  # target below a mark and the items above it
_REFUSED = {"EXT1", "EXT2", "EXT4", "INST", "OBJ", "NEXT_BUFFER", "READONLY_BUFFER"}
# The rest: (takes everything down to a mark, how many items it takes otherwise, how many objects it makes)
_MAKES = {op.name: ("mark" in [s.name for s in op.stack_before], len(op.stack_before), len(op.stack_after))
          for op in pickletools.opcodes}
_CONTAINERS = {"list", "dict", "set"}  # what an empty-container opcode makes: the target of a later fill
_ATOMS = {op.name for op in pickletools.opcodes  # constants and globals: nothing inside, never filled
          if not op.stack_before and len(op.stack_after) == 1 and op.stack_after[0].name not in _CONTAINERS
          and op.name not in _MEMO_GET | _REFUSED | {"MARK"}}


class Refused(ValueError):
    """A pickle refused before unpickling for the work it would cost; one line naming the file."""


class Malformed(ValueError):
    """Bytes that are no valid pickle (or archive): damaged or truncated. The message says what, not which
    file, so the caller words it as its damage ("model.pt is damaged: ...")."""


class _Node:
    """One object the unpickler would make: its expanded size and nesting, and whether another took it in."""

    __slots__ = ("depth", "size", "taken")

    def __init__(self, size: int = 1, depth: int = 1) -> None:
        self.size, self.depth, self.taken = size, depth, False


_MARK = object()
_ATOM = _Node()
_ATOM.taken = True  # shared by every constant, so one that is filled (never in a valid state dict) is refused


def _refuse(name: str, why: str) -> Refused:
    return Refused(f"{name} was refused unread: its pickle {why}; nothing in it was executed")


def check_pickle(data: bytes, name: str, *, start: int = 0) -> int:
    """Walk one pickle in `data` from `start` without unpickling it; return where it ends (after STOP).

    Raises:
        Refused: one line naming `name`: an opcode refused, an object that expands past `MAX_PICKLE_NODES`
            or nests past `MAX_PICKLE_DEPTH`, or a container filled after it was taken in.
        Malformed: not a valid pickle, or truncated (the message does not name the file).
    """
    stack: list[object] = []
    memo: dict[int, _Node] = {}

    def pop() -> _Node:
        if not stack or stack[-1] is _MARK:
            raise Malformed("not a valid pickle (an opcode takes more than the stack holds)")
        return stack.pop()  # type: ignore[return-value]

    def pop_to_mark() -> list[_Node]:
        items: list[_Node] = []
        while stack and stack[-1] is not _MARK:
            items.append(stack.pop())  # type: ignore[arg-type]
        if not stack:
            raise Malformed("not a valid pickle (no mark to pop to)")
        stack.pop()
        return items

    def take(items: list[_Node]) -> None:
        for item in items:
            if item is not _ATOM:
                item.taken = True

    def check(node: _Node) -> _Node:
        if node.size > MAX_PICKLE_NODES:
            raise _refuse(name, f"describes an object of more than {MAX_PICKLE_NODES:,} parts (one reused many "
                                "times over, e.g. a hash bomb); a state dict holds a few dozen per tensor")
        if node.depth > MAX_PICKLE_DEPTH:
            raise _refuse(name, f"nests objects more than {MAX_PICKLE_DEPTH} deep; a state dict nests about 6")
        return node

    def made_of(items: list[_Node]) -> _Node:
        if not items:
            return _Node()
        take(items)
        return check(_Node(1 + sum(i.size for i in items), 1 + max(i.depth for i in items)))

    def fill(target: _Node, items: list[_Node]) -> None:
        if target.taken:
            raise _refuse(name, "fills a container after another object took it in (a self-reference)")
        take(items)
        target.size += sum(i.size for i in items)
        target.depth = max(target.depth, 1 + max((i.depth for i in items), default=0))
        check(target)

    try:
        stream = io.BytesIO(data)
        stream.seek(start)
        for op, arg, pos in pickletools.genops(stream):
            code = op.name
            if code in _REFUSED:
                raise _refuse(name, f"uses the {code} opcode, which a state dict never needs")
            if code == "STOP":
                pop()
                return pos + 1
            if code in _ATOMS:
                stack.append(_ATOM)
            elif code == "MARK":
                stack.append(_MARK)
            elif code in _MEMO_PUT:
                if not stack or stack[-1] is _MARK:
                    raise Malformed("not a valid pickle (it memoizes an empty stack)")
                memo[len(memo) if code == "MEMOIZE" else int(arg)] = stack[-1]  # type: ignore[assignment]
            elif code in _MEMO_GET:
                if int(arg) not in memo:
                    raise Malformed("not a valid pickle (it reads a memo entry never written)")
                stack.append(memo[int(arg)])
            elif code == "DUP":
                node = pop()
                stack.extend((node, node))
            elif code == "POP":
                pop()
            elif code == "POP_MARK":
                pop_to_mark()
            elif code in _FILL:
                items = [pop() for _ in range(_FILL[code])]
                target = pop()
                fill(target, items)
                stack.append(target)
            elif code in _FILL_MARKED:
                items = pop_to_mark()
                target = pop()
                fill(target, items)
                stack.append(target)
            else:  # makes new objects from what it takes: constants, TUPLE*, LIST, DICT, REDUCE, NEWOBJ, ...
                marked, takes, makes = _MAKES[code]
                items = pop_to_mark() if marked else [pop() for _ in range(takes)]
                if makes:
                    stack.append(made_of(items))
    except (Refused, Malformed):
        raise
    except ValueError as err:  # genops: an unknown opcode, or data that ends inside one
        raise Malformed(f"not a valid pickle ({str(err).splitlines()[0][:120]})") from None
    raise Malformed("a truncated pickle (it has no STOP)")


def _zip_pickles(path: Path, name: str) -> list[tuple[str, bytes]]:
    """The ``.pkl`` members of a zip archive, each read up to `MAX_PICKLE_BYTES`."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise _refuse(name, "archive names one member twice, so what torch would read is ambiguous")
            found = []
            for info in infos:
                if not info.filename.endswith(".pkl"):
                    continue
                if info.file_size > MAX_PICKLE_BYTES:
                    raise _refuse(name, f"member {info.filename[-60:]!r} is {info.file_size:,} bytes, more than "
                                        f"the {MAX_PICKLE_BYTES:,} a state dict's pickle may take")
                with archive.open(info) as member:
                    data = member.read(MAX_PICKLE_BYTES + 1)
                if len(data) > MAX_PICKLE_BYTES:
                    raise _refuse(name, f"member {info.filename[-60:]!r} is larger than it says")
                found.append((info.filename, data))
    except (Refused, Malformed):
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, RuntimeError, ValueError) as err:
        raise Malformed(f"a damaged zip archive ({str(err).splitlines()[0][:120] or type(err).__name__})") from None
    if not found:
        raise Malformed("a zip archive without a data.pkl, so not a torch.save file")
    return found


def check_torch_file(path: str | Path, name: str | None = None) -> None:
    """Check every pickle `torch.load(path)` would unpickle, without unpickling any.

    A zip archive (torch.save's format since PyTorch 1.6): each ``.pkl`` member. Any other file
    (PyTorch's legacy format, or a bare pickle): the pickles it starts with, up to the five the legacy
    format holds, reading at most `MAX_PICKLE_BYTES` of them.

    Raises:
        Refused: one line naming `name` (default the file name): the work the pickle would cost.
        Malformed: what is wrong, for the caller to word as damage: not a pickle, truncated, a damaged archive.
        ValueError: the file cannot be read.
    """
    path = Path(path)
    name = name or path.name
    try:
        if zipfile.is_zipfile(path):
            for _member, data in _zip_pickles(path, name):
                check_pickle(data, name)
            return
        with open(path, "rb") as file:
            data = file.read(MAX_PICKLE_BYTES)
    except OSError as err:
        raise ValueError(f"{name} cannot be read: {err.strerror or type(err).__name__}") from None
    end = 0
    for _ in range(_LEGACY_PICKLES):  # torch.load unpickles these in turn; the storages' raw bytes follow
        end = check_pickle(data, name, start=end)
        if end >= len(data):
            return
