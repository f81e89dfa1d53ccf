"""Mutants of a target's kernel functions, generated mechanically.

A mutant is (target, function, operator, site): the kernel function the target's
class actually runs (its MRO: for 7.2, `dax_folio_put` is `kdax/v7_2.py`'s, `zap_pte`
is `kdax/memory.py`'s) with one kernel-aware change at the site-th place the operator
applies.  Its source comes from our own kdax source, rewritten with libcst; the
rewritten function is compiled and installed as an override in a subclass of the
target whose `base` is the target: what the target shows itself on the same ops is the
base's, not the mutant's (`daxfuzz.core.known`).
A mutant is also a target name, ``mutant:<target>:<function>:<operator>:<site>``,
that `kdax.targets.get_target` rebuilds in any process (an atheris subprocess too).

Operators (`OPERATORS`):

    drop-ref      delete a reference or mapcount get/put statement (folio_get, folio_put,
                  gup_put_folio, folio_add_file_rmap_pte, ``_pincount -= refs`` ...)
    dup-ref       do it twice
    int+1 int-1   an integer literal plus or minus one
    const+1 const-1  a named integer constant (GUP_PIN_COUNTING_BIAS, self.PMD_ORDER,
                  self.PG_PMD_NR ...) plus or minus one
    arith+1 arith-1  an arithmetic expression or ``+=``/``-=`` amount plus or minus one
    negate-cond   ``if c`` / ``while c`` / ``x if c else y`` / ``return c`` -> ``not (c)``
    cond-true     delete an ``if`` condition: its body always runs
    drop-operand  ``a and b`` / ``a or b`` -> ``a``, or -> ``b``
    swap-stmts    swap two adjacent statements of a block
    head-tail     a head page where a tail page was meant and back: ``page_folio(p)`` ->
                  ``p``, ``pfn_folio(x)`` -> ``pages[x]``, ``pages[a + b]`` -> ``pages[a]``
    return-early  return (None, 0, False) before a statement of the function's body
"""

from __future__ import annotations
import __future__

import ast
import functools
import os
import re
import sys
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from daxfuzz.errors import ConfigError

if TYPE_CHECKING:
    from kdax.mm import KernelBase

PREFIX = "mutant:"

#: kernel functions that take or drop a reference, a pin or a mapcount (include/linux/
#: mm.h, page_ref.h, mm/gup.c, mm/rmap.c, mm/mmu_gather.c; fs/dax.c's share count)
REF_CALLS = frozenset({
    "folio_get", "folio_put", "folio_put_refs", "folio_ref_inc", "folio_ref_dec",
    "folio_ref_add", "folio_ref_sub", "page_ref_inc", "page_ref_dec", "get_page", "put_page",
    "try_grab_folio", "gup_put_folio", "tlb_remove_folio", "folio_add_file_rmap_pte",
    "folio_add_file_rmap_pmd", "folio_dup_file_rmap_pte", "folio_remove_rmap_pte",
    "folio_remove_rmap_pmd", "dax_folio_put", "unpin_user_pages", "put_user_page",
})
#: struct page and address-space counters written directly (``folio->_pincount -= refs``)
COUNTERS = frozenset({"_refcount", "_pincount", "_mapcount", "_large_mapcount",
                      "_entire_mapcount", "nrpages"})
#: the model's plumbing, not kernel functions: never mutated
PLUMBING = frozenset({"apply", "WARN_ON_ONCE", "VM_BUG_ON", "_wrote", "set_field",
                      "_wrote_pincount", "_mapcount_add", "livelock", "_killed_result"})
_CONST = re.compile(r"^[A-Z][A-Z0-9_]+$")


@dataclass(frozen=True)
class Mutant:
    """One mutant: the `site`-th place `operator` applies in `function` of `target`."""

    target: str
    function: str
    operator: str
    site: int

    @property
    def name(self) -> str:
        """The target name that rebuilds this mutant."""
        return f"{PREFIX}{self.target}:{self.function}:{self.operator}:{self.site}"

    @property
    def id(self) -> str:
        """The name without the target: unique within one target's mutants."""
        return f"{self.function}:{self.operator}:{self.site}"

    @classmethod
    def parse(cls, name: str) -> Mutant:
        """The mutant a `name` spells; ConfigError when it spells none."""
        parts = name[len(PREFIX):].rsplit(":", 3) if name.startswith(PREFIX) else []
        if len(parts) != 4 or not parts[3].isdigit():
            raise ConfigError(f"{name!r} is not a mutant name "
                              f"({PREFIX}TARGET:FUNCTION:OPERATOR:SITE)")
        return cls(parts[0], parts[1], parts[2], int(parts[3]))


# ------------------------------------------------------------------ operators -------
def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _expr(text: str) -> cst.BaseExpression:
    return cst.parse_expression(text)


_TIGHT = (cst.Name, cst.Attribute, cst.Integer, cst.Call, cst.Subscript)


def _plus(node: cst.BaseExpression, sign: str) -> str:
    """``node + 1`` (or ``- 1``) as code, `node` parenthesized where `+` binds tighter."""
    code = _code(node)
    tight = isinstance(node, _TIGHT) or node.lpar or (
        isinstance(node, cst.BinaryOperation)
        and isinstance(node.operator, (cst.Add, cst.Subtract, cst.Multiply)))
    return f"{code} {sign} 1" if tight else f"({code}) {sign} 1"


def _self_call(node: cst.CSTNode) -> str | None:
    """The method name of ``self.NAME(...)``, else None."""
    if (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
            and isinstance(node.func.value, cst.Name) and node.func.value.value == "self"):
        return node.func.attr.value
    return None


def _is_ref_stmt(stmt: cst.BaseSmallStatement) -> bool:
    if isinstance(stmt, cst.Expr):
        return _self_call(stmt.value) in REF_CALLS
    if isinstance(stmt, cst.AugAssign):
        t: cst.BaseExpression = stmt.target
        if isinstance(t, cst.Subscript):
            t = t.value
        return isinstance(t, cst.Attribute) and t.attr.value in COUNTERS
    return False


class _Op(cst.CSTTransformer):
    """Counts the sites of one operator in a function and rewrites site `at` (-1: none).
    `ints` says which named constants hold integers."""

    def __init__(self, at: int, ints: frozenset[str]) -> None:
        super().__init__()
        self.at = at
        self.n = 0
        self.ints = ints

    def hit(self) -> bool:
        self.n += 1
        return self.n - 1 == self.at


class DropRef(_Op):
    def leave_SimpleStatementLine(self, orig, node):
        if len(node.body) == 1 and _is_ref_stmt(node.body[0]) and self.hit():
            return node.with_changes(body=[cst.Pass()])
        return node


class DupRef(_Op):
    def leave_SimpleStatementLine(self, orig, node):
        if len(node.body) == 1 and _is_ref_stmt(node.body[0]) and self.hit():
            return cst.FlattenSentinel([node, node.with_changes(leading_lines=[])])
        return node


class IntLiteral(_Op):
    delta = 1

    def leave_Integer(self, orig, node):
        if self.hit():
            v = ast.literal_eval(node.value) + self.delta
            text = hex(v) if node.value.lower().startswith("0x") and v >= 0 else str(v)
            return _expr(f"({text})") if v < 0 else cst.Integer(text)
        return node


class IntLiteralDown(IntLiteral):
    delta = -1


class _Skipping(_Op):
    """Skips names that are not values: attribute names, callees, targets, annotations."""

    def __init__(self, at: int, ints: frozenset[str]) -> None:
        super().__init__(at, ints)
        self.skip: set[int] = set()

    def visit_Annotation(self, node) -> bool:
        return False

    def visit_Call(self, node) -> None:
        self.skip.add(id(node.func))

    def visit_Attribute(self, node) -> None:
        self.skip.add(id(node.attr))

    def visit_AssignTarget(self, node) -> None:
        self.skip.add(id(node.target))

    def visit_AugAssign(self, node) -> None:
        self.skip.add(id(node.target))

    def visit_Param(self, node) -> None:
        self.skip.add(id(node.name))


class NamedConst(_Skipping):
    sign = "+"

    def _const(self, orig, node):
        if id(orig) not in self.skip and self.hit():
            return _expr(f"({_code(node)} {self.sign} 1)")
        return node

    def leave_Name(self, orig, node):
        if _CONST.match(node.value) and node.value in self.ints:
            return self._const(orig, node)
        return node

    def leave_Attribute(self, orig, node):
        key = _code(node)
        if _CONST.match(node.attr.value) and key in self.ints:
            return self._const(orig, node)
        return node


class NamedConstDown(NamedConst):
    sign = "-"


_ARITH = (cst.Add, cst.Subtract, cst.Multiply, cst.LeftShift, cst.RightShift)


class Arith(_Op):
    sign = "+"

    def leave_BinaryOperation(self, orig, node):
        strs = (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)
        if (isinstance(node.operator, _ARITH) and not isinstance(node.left, strs)
                and not isinstance(node.right, strs) and self.hit()):
            return _expr(f"({_plus(node, self.sign)})")
        return node

    def leave_AugAssign(self, orig, node):
        if isinstance(node.operator, (cst.AddAssign, cst.SubtractAssign)) and self.hit():
            return node.with_changes(value=_expr(_plus(node.value, self.sign)))
        return node


class ArithDown(Arith):
    sign = "-"


class NegateCond(_Op):
    def _neg(self, test):
        return _expr(f"not ({_code(test)})")

    def leave_If(self, orig, node):
        return node.with_changes(test=self._neg(node.test)) if self.hit() else node

    def leave_While(self, orig, node):
        return node.with_changes(test=self._neg(node.test)) if self.hit() else node

    def leave_IfExp(self, orig, node):
        return node.with_changes(test=self._neg(node.test)) if self.hit() else node

    def leave_Return(self, orig, node):
        v = node.value
        if isinstance(v, (cst.Comparison, cst.BooleanOperation)) or (
                isinstance(v, cst.UnaryOperation) and isinstance(v.operator, cst.Not)):
            if self.hit():
                return node.with_changes(value=self._neg(v))
        return node


class CondTrue(_Op):
    def leave_If(self, orig, node):
        return node.with_changes(test=cst.Name("True")) if self.hit() else node


class DropOperand(_Op):
    def leave_BooleanOperation(self, orig, node):
        if self.hit():
            return node.left
        if self.hit():
            return node.right
        return node


class SwapStmts(_Op):
    def leave_IndentedBlock(self, orig, node):
        body = list(node.body)
        for i in range(len(body) - 1):
            if self.hit():
                body[i], body[i + 1] = body[i + 1], body[i]
                return node.with_changes(body=body)
        return node


class HeadTail(_Op):
    def leave_Call(self, orig, node):
        name = _self_call(node)
        if name == "page_folio" and len(node.args) == 1 and self.hit():
            return node.args[0].value
        if name == "pfn_folio" and len(node.args) == 1 and self.hit():
            return _expr(f"self.pages[{_code(node.args[0].value)}]")
        return node

    def leave_Subscript(self, orig, node):
        if _code(node.value) != "self.pages" or len(node.slice) != 1:
            return node
        idx = node.slice[0].slice
        if not isinstance(idx, cst.Index):
            return node
        if isinstance(idx.value, cst.BinaryOperation) and isinstance(idx.value.operator,
                                                                     cst.Add):
            if self.hit():
                return _expr(f"self.pages[{_code(idx.value.left)}]")
        elif self.hit():
            return _expr(f"self.pfn_folio({_code(idx.value)})")
        return node


_DEFAULT_RETURN = {"None": "return", "int": "return 0", "bool": "return False"}


class ReturnEarly(_Op):
    def leave_FunctionDef(self, orig, node):
        ann = _code(node.returns.annotation).strip() if node.returns else ""
        ret = _DEFAULT_RETURN.get(ann, "return None" if ann.endswith("| None") else None)
        if ret is None or not isinstance(node.body, cst.IndentedBlock):
            return node
        body = list(node.body.body)
        for i, stmt in enumerate(body):
            if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0],
                                                                        cst.Return):
                continue
            if self.hit():
                body.insert(i, cst.parse_statement(ret + "\n"))
                return node.with_changes(body=node.body.with_changes(body=body))
        return node


#: operator name -> transformer, in the order mutants are generated
OPERATORS: dict[str, type[_Op]] = {
    "drop-ref": DropRef,
    "dup-ref": DupRef,
    "int+1": IntLiteral,
    "int-1": IntLiteralDown,
    "const+1": NamedConst,
    "const-1": NamedConstDown,
    "arith+1": Arith,
    "arith-1": ArithDown,
    "negate-cond": NegateCond,
    "cond-true": CondTrue,
    "drop-operand": DropOperand,
    "swap-stmts": SwapStmts,
    "head-tail": HeadTail,
    "return-early": ReturnEarly,
}


# ------------------------------------------------------------------ the source ------
@dataclass(frozen=True)
class Source:
    """Where the target's `function` is defined: its class, file and source."""

    cls: type  # the class in the target's MRO that defines it
    path: str  # its source file
    line: int  # the line of its ``def``
    node: cst.FunctionDef

    @property
    def module(self) -> types.ModuleType:
        return sys.modules[self.cls.__module__]

    def rel(self) -> str:
        """The file relative to the package root (``kdax/dax.py``)."""
        root = os.path.dirname(os.path.dirname(os.path.abspath(
            sys.modules[self.cls.__module__.split(".")[0]].__file__ or "")))
        return os.path.relpath(self.path, root)


@functools.cache
def _parsed(path: str) -> dict[tuple[str, str], tuple[cst.FunctionDef, int]]:
    """Per (class, method) of the module at `path`: its FunctionDef and ``def`` line."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = {(c.name, fn.name): fn.lineno for c in ast.parse(text).body
             if isinstance(c, ast.ClassDef) for fn in c.body if isinstance(fn, ast.FunctionDef)}
    out = {}
    for cls in cst.parse_module(text).body:
        if isinstance(cls, cst.ClassDef) and isinstance(cls.body, cst.IndentedBlock):
            for fn in cls.body.body:
                if isinstance(fn, cst.FunctionDef):
                    key = (cls.name.value, fn.name.value)
                    out[key] = (fn, lines[key])
    return out


def _mangled(cls: type, name: str) -> str:
    return f"_{cls.__name__.lstrip('_')}{name}" if name.startswith("__") else name


def _source(target: type, cls: type, fname: str) -> Source | None:
    """`fname` as class `cls` of `target`'s MRO defines it, if that is what runs."""
    mod = sys.modules.get(cls.__module__)
    path = getattr(mod, "__file__", None)
    key = _mangled(cls, fname)
    if (cls is object or not path or not path.endswith(".py") or fname in PLUMBING
            or fname.startswith("__") and fname.endswith("__")
            or not isinstance(cls.__dict__.get(key), types.FunctionType)
            # the class that wins the MRO lookup is the one whose code runs
            or next(c for c in target.__mro__ if key in c.__dict__) is not cls):
        return None
    found = _parsed(path).get((cls.__name__, fname))
    return Source(cls, path, found[1], found[0]) if found else None


def kernel_functions(target: type) -> dict[str, Source]:
    """Every kernel function `target` runs, by name, where the MRO resolves it."""
    out: dict[str, Source] = {}
    for cls in target.__mro__:
        path = getattr(sys.modules.get(cls.__module__), "__file__", None)
        if cls is object or not path or not path.endswith(".py"):
            continue
        for cname, fname in _parsed(path):
            if cname == cls.__name__ and fname not in out:
                src = _source(target, cls, fname)
                if src is not None:
                    out[fname] = src
    return out


def kernel_function(target: type, fname: str) -> Source | None:
    """Where `target` runs `fname` from (None: no kernel function of that name)."""
    for cls in target.__mro__:
        if _mangled(cls, fname) in cls.__dict__:
            return _source(target, cls, fname)
    return None


def _int_constants(target: type, src: Source) -> frozenset[str]:
    """Names and ``X.Y`` attributes in `src`'s module, and ``self.Y`` of a target
    instance, that hold integers (the named constants const+-1 may change)."""
    return _int_names(target, src.cls.__module__)


@functools.cache
def _int_names(target: type, module: str) -> frozenset[str]:
    from daxfuzz.vocab.geometry import DEFAULT

    g = vars(sys.modules[module])
    names = {k for k, v in g.items() if isinstance(v, int) and not isinstance(v, bool)}
    for k, v in g.items():
        if isinstance(v, type):
            names |= {f"{k}.{a}" for a, x in vars(v).items()
                      if _CONST.match(a) and isinstance(x, int) and not isinstance(x, bool)}
    inst = target(DEFAULT)
    names |= {f"self.{a}" for a, x in vars(inst).items()
              if _CONST.match(a) and isinstance(x, int) and not isinstance(x, bool)}
    return frozenset(names)


def _apply(src: Source, operator: str, site: int, ints: frozenset[str]
           ) -> tuple[str | None, int]:
    """(the mutated function's code or None, the operator's number of sites)."""
    op = OPERATORS[operator](site, ints)
    # the function's own name is no site: visit the body only
    new = src.node.visit(op)
    if site < 0 or op.n <= site:
        return None, op.n
    # the operators rewrite inside the function, never remove it: `new` is a node
    return _code(new), op.n  # type: ignore[arg-type]


def sites(target: type[KernelBase], function: str, src: Source | None = None) -> dict[str, int]:
    """How many mutants each operator makes of `function`."""
    src = src or kernel_function(target, function)
    if src is None:
        raise ConfigError(f"target {target.name} runs no kernel function {function!r}")
    ints = _int_constants(target, src)
    return {name: _apply(src, name, -1, ints)[1] for name in OPERATORS}


def mutants(target: type[KernelBase], functions: list[str]) -> Iterator[Mutant]:
    """Every mutant of `functions` (in that order, operators in `OPERATORS` order)."""
    funcs = kernel_functions(target)
    for fn in functions:
        for op, n in sites(target, fn, funcs[fn]).items():
            for i in range(n):
                yield Mutant(target.name, fn, op, i)


# ------------------------------------------------------------------ building --------
@dataclass(frozen=True)
class Built:
    """A mutant's code, its one-line diff, and its target class."""

    mutant: Mutant
    source: Source
    code: str
    diff: str
    cls: type | None  # None: dropped (identical to the original, or does not build)
    dropped: str = ""  # "identical" or "does not build: <error>"


def _strip_comment(line: str) -> str:
    return line.split("  # ", 1)[0].strip()


def one_line_diff(src: Source, old: str, new: str, width: int = 160) -> str:
    """``kdax/dax.py:86: self.folio_put(folio) -> pass``: the lines between the common
    head and tail of the two versions, in one line."""
    a, b = old.splitlines(), new.splitlines()
    first = next(i for i, x in enumerate(a) if x.lstrip().startswith("def "))
    lo = 0
    while lo < min(len(a), len(b)) and a[lo] == b[lo]:
        lo += 1
    hi = 0
    while hi < min(len(a), len(b)) - lo and a[-1 - hi] == b[-1 - hi]:
        hi += 1

    def cut(lines: list[str]) -> str:
        text = " / ".join(_strip_comment(x) for x in lines)
        return text if len(text) <= width else text[:width - 3] + "..."

    was, now = cut(a[lo:len(a) - hi]), cut(b[lo:len(b) - hi])
    return f"{src.rel()}:{src.line + lo - first}: " + (f"{was} -> {now}" if was else f"+ {now}")


def _compile(src: Source, code: str) -> types.FunctionType:
    """The function `code` defines, compiled as a method of `src.cls` (names mangled as
    there, zero-argument super() bound to it), with `src.cls`'s module as globals."""
    body = f"class {src.cls.__name__}:\n" + textwrap.indent(code, "    ")
    flags = __future__.annotations.compiler_flag
    ns: dict[str, object] = {}
    exec(compile(body, f"<mutant of {src.rel()}>", "exec", flags=flags, dont_inherit=True),
         vars(src.module), ns)
    name = _mangled(src.cls, src.node.name.value)
    fn = vars(ns[src.cls.__name__])[name]
    closure = fn.__closure__
    if closure is not None:
        closure = tuple(types.CellType(src.cls) if v == "__class__" else c
                        for v, c in zip(fn.__code__.co_freevars, closure, strict=True))
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                             closure)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = f"{src.cls.__qualname__}.{name}"
    return new


def build(m: Mutant, target: type[KernelBase] | None = None) -> Built:
    """Generate, compile and install mutant `m`; ConfigError if it names nothing."""
    from daxfuzz.vocab.geometry import DEFAULT
    from kdax.targets import get_target

    target = target or get_target(m.target)
    src = kernel_function(target, m.function)
    if src is None:
        raise ConfigError(f"{m.name}: target {m.target} runs no kernel function "
                          f"{m.function!r}")
    if m.operator not in OPERATORS:
        raise ConfigError(f"{m.name}: unknown operator {m.operator!r}; operators: "
                          + ", ".join(OPERATORS))
    old = _code(src.node)
    new, n = _apply(src, m.operator, m.site, _int_constants(target, src))
    if new is None:
        raise ConfigError(f"{m.name}: {m.operator} has {n} site(s) in {m.function}")
    diff = one_line_diff(src, old, new)
    if ast.dump(ast.parse(textwrap.dedent(old))) == ast.dump(ast.parse(textwrap.dedent(new))):
        return Built(m, src, new, diff, None, "identical")
    try:
        fn = _compile(src, new)
        cls = type(f"Mutant_{m.function}", (target,), {
            _mangled(src.cls, m.function): fn, "name": m.name, "summary": diff,
            "base": target.name, "mutant": m, "mutated": fn, "__module__": __name__})
        cls(DEFAULT)
    except Exception as e:  # noqa: BLE001 - a mutant that does not even build is dropped
        return Built(m, src, new, diff, None, f"does not build: {type(e).__name__}: {e}")
    return Built(m, src, new, diff, cls)


@functools.cache
def mutant_target(name: str) -> type:
    """The target class of mutant `name` (the hook of `kdax.targets.get_target`)."""
    b = build(Mutant.parse(name))
    if b.cls is None:
        raise ConfigError(f"{name}: dropped mutant ({b.dropped})")
    return b.cls
