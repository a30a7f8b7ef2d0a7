"""Deny-by-default decisions on the globals a pickle imports.

A global is trusted only if it is listed exactly (``module:qualname``) in a curated list
or in the policy's additions. Blocklists lose: every year brings new gadgets that reach
``os.system`` through some innocent-looking library function. The few allowlisted
callables whose arguments pick *another* callable (``getattr``, ufunc reconstruction) are
"checked": the object they would return must itself be allowed.
"""

from __future__ import annotations

import _compat_pickle
from collections.abc import Iterable
from enum import Enum

from securenb.scan.allowlists import CURATED


class ArgCheck(Enum):
    """The argument check an allowlisted callable needs before it is harmless."""

    GETATTR = "getattr"
    """``getattr(<allowed global>, "<name>")``: the attribute must be allowed itself."""
    NAMED_GLOBAL = "named-global"
    """``f("<module>", "<name>")`` returns that global: it must be allowed itself."""
    TEXT_CODEC = "text-codec"
    """``_codecs.encode(text, encoding)``: only text encodings (no codec lookups)."""
    GLOBAL_TYPES = "global-types"
    """``copyreg._reconstructor(cls, base, state)``: cls and base must be globals."""
    NESTED_TORCH = "nested-torch"
    """``torch.storage._load_from_bytes(b)``: ``b`` is a torch file, scanned as one."""
    TORCH_REBUILD = "torch-rebuild"
    """``_rebuild_from_type_v2(func, cls, args, state)`` calls ``func``: a tensor rebuild."""
    RNG_CTOR = "rng-ctor"
    """numpy's generator/random-state constructors call their second argument: only the
    default bit-generator constructor, with a default bit generator."""
    BIT_GENERATOR = "bit-generator"
    """``__bit_generator_ctor(x)`` instantiates ``x``: only numpy's bit generators."""


CHECKED: dict[str, ArgCheck] = {
    "builtins:getattr": ArgCheck.GETATTR,
    "numpy.core:_ufunc_reconstruct": ArgCheck.NAMED_GLOBAL,
    "numpy._core:_ufunc_reconstruct": ArgCheck.NAMED_GLOBAL,
    "_codecs:encode": ArgCheck.TEXT_CODEC,
    "copyreg:_reconstructor": ArgCheck.GLOBAL_TYPES,
    "torch.storage:_load_from_bytes": ArgCheck.NESTED_TORCH,
    "torch._tensor:_rebuild_from_type_v2": ArgCheck.TORCH_REBUILD,
    "numpy.random._pickle:__generator_ctor": ArgCheck.RNG_CTOR,
    "numpy.random._pickle:__randomstate_ctor": ArgCheck.RNG_CTOR,
    "numpy.random._pickle:__bit_generator_ctor": ArgCheck.BIT_GENERATOR,
}

BIT_GENERATORS = frozenset({"MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"})
"""numpy's default bit generators, by name (numpy 1.x pickles) or class (numpy 2)."""

TEXT_CODECS = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "utf-8", "utf8", "ascii"})

# Used only to rate severity and explain findings, never to decide: anything not
# allowlisted is already reported.
_DANGEROUS_MODULES = frozenset(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "sys",
        "socket",
        "ssl",
        "http",
        "urllib",
        "urllib3",
        "requests",
        "aiohttp",
        "httplib",
        "ftplib",
        "smtplib",
        "telnetlib",
        "imaplib",
        "poplib",
        "pty",
        "runpy",
        "importlib",
        "pkgutil",
        "pickle",
        "_pickle",
        "marshal",
        "dill",
        "cloudpickle",
        "ctypes",
        "cffi",
        "shutil",
        "code",
        "codeop",
        "pdb",
        "bdb",
        "trace",
        "timeit",
        "cProfile",
        "profile",
        "pydoc",
        "webbrowser",
        "pip",
        "ensurepip",
        "venv",
        "distutils",
        "setuptools",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "threading",
        "_thread",
        "signal",
        "types",
        "inspect",
        "operator",
        "_operator",
        "functools",
        "logging",
        "tarfile",
        "zipfile",
        "glob",
        "doctest",
        "idlelib",
        "lib2to3",
        "_osx_support",
        "_aix_support",
        "_pyrepl",
        "test",
        "tempfile",
        "io",
        "_io",
        "sqlite3",
        "antigravity",
        "this",
        "builtins",
        "__builtin__",
        "site",
        "sysconfig",
    ]
)
_DANGEROUS_PREFIXES = (
    "torch.serialization",
    "torch.jit",
    "torch.hub",
    "torch.utils",
    "torch._inductor",
    "torch._dynamo",
    "torch.fx",
    "torch.package",
    "torch.distributed",
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",
    "numpy.lib.npyio",
    "pandas.io",
    "joblib",
)
_DANGEROUS_NAMES = frozenset({"load", "loads", "system", "popen", "eval", "exec", "run", "open"})


def resolve_name(module: str, name: str, proto: int) -> tuple[str, str]:
    """Apply the Python 2 name mapping the unpickler applies below protocol 3."""
    if proto < 3:
        mapped = _compat_pickle.NAME_MAPPING.get((module, name))
        if mapped is not None:
            return mapped
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return module, name


def is_dotted_identifier(text: str) -> bool:
    """True for names an import could succeed on (``a.b_c``); garbage cannot import."""
    return bool(text) and all(part.isidentifier() for part in text.split("."))


class Allowlist:
    """The curated globals plus a policy's additions; answers "may this be imported?"."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._exact: set[str] = set(CURATED)
        self._whole_modules: set[str] = set()
        self.extra: list[str] = []
        for entry in extra:
            entry = entry.strip()
            if not entry:
                continue
            self.extra.append(entry)
            if ":" in entry:
                module, _, name = entry.partition(":")
            else:
                module, _, name = entry.rpartition(".")
            if not is_dotted_identifier(module) or not (name == "*" or is_dotted_identifier(name)):
                raise ValueError(f"allowed global {entry!r}: expected module:qualname or module:*")
            if name == "*":
                self._whole_modules.add(module)
            else:
                self._exact.add(f"{module}:{name}")

    def allows(self, module: str, name: str) -> bool:
        """Exact listing, or a ``module:*`` addition for a plain (undotted) name."""
        if f"{module}:{name}" in self._exact:
            return True
        return module in self._whole_modules and name.isidentifier()

    @staticmethod
    def check_for(module: str, name: str) -> ArgCheck | None:
        return CHECKED.get(f"{module}:{name}")

    @staticmethod
    def is_dangerous(module: str, name: str) -> bool:
        """Known to run code, import or touch files/network: rated CRITICAL."""
        top = module.split(".", 1)[0]
        return (
            top in _DANGEROUS_MODULES
            or module.startswith(_DANGEROUS_PREFIXES)
            or name.rsplit(".", 1)[-1] in _DANGEROUS_NAMES
        )
