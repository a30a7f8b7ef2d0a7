"""joblib: the array wrapper its pickles reference (the array bytes follow the wrapper in
the stream and are skipped by the scanner using the wrapper's recorded dtype and shape).
"""

GLOBALS: frozenset[str] = frozenset(
    {
        "joblib.numpy_pickle:NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle:NumpyArrayWrapper",
    }
)
