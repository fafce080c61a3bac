"""jsonschema, imported without the IRI grammar it would compile for nothing.

jsonschema imports rfc3987_syntax (which Jupyter installs) for its "iri" format checks, and
that compiles an Earley grammar on import: 3.3 s, half of `import rico_lab`, for checks
rico_lab never makes (roles and scripts assert no formats). It stays out while jsonschema
loads; the module itself can still be imported later, only jsonschema's FormatChecker lacks
"iri". Every module of rico_lab that validates imports jsonschema from here, so which one
loads first does not matter.
"""

import sys

_IRI_PARSER = "rfc3987_syntax"
if _IRI_PARSER in sys.modules:
    import jsonschema
else:
    sys.modules[_IRI_PARSER] = None  # type: ignore[assignment]  # makes its import fail
    try:
        import jsonschema
    finally:
        del sys.modules[_IRI_PARSER]

__all__ = ["jsonschema"]
