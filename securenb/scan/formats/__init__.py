"""One module per serialization format; :mod:`securenb.scan.dispatch` picks by content."""
