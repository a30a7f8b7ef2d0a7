"""Python built-ins and standard-library types that pickles of ML objects reference.

Only constructors of plain data types: none of them imports a module, runs code, touches
files or the network, or returns a callable chosen by its arguments. The few callables
that take names or other callables as arguments (``builtins.getattr``, ``_codecs.encode``,
``copyreg._reconstructor``, ...) live in :mod:`securenb.scan.allowlist` with the checks
their arguments must pass.
"""

GLOBALS: frozenset[str] = frozenset(
    {
        "builtins:bool",
        "builtins:bytearray",
        "builtins:bytes",
        "builtins:complex",
        "builtins:dict",
        "builtins:float",
        "builtins:frozenset",
        "builtins:int",
        "builtins:list",
        "builtins:object",
        "builtins:range",
        "builtins:set",
        "builtins:slice",
        "builtins:str",
        "builtins:tuple",
        "array:array",
        "array:_array_reconstructor",
        "argparse:Namespace",
        "collections:Counter",
        "collections:OrderedDict",
        "collections:defaultdict",
        "collections:deque",
        "copyreg:__newobj__",
        "copyreg:__newobj_ex__",
        "datetime:date",
        "datetime:datetime",
        "datetime:time",
        "datetime:timedelta",
        "datetime:timezone",
        "decimal:Decimal",
        "fractions:Fraction",
        "pathlib:Path",
        "pathlib:PosixPath",
        "pathlib:PurePath",
        "pathlib:PurePosixPath",
        "pathlib:PureWindowsPath",
        "pathlib:WindowsPath",
        "re:_compile",
        "types:SimpleNamespace",
        "uuid:UUID",
        "zoneinfo:ZoneInfo",
        "zoneinfo:ZoneInfo._unpickle",
    }
)
