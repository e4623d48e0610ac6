"""Keep an optional import that costs seconds out of every process of the project.

``jsonschema`` (imported by nbformat, papermill, nbval and our schema validation) tries the optional
``rfc3987_syntax`` to check the ``iri``/``iri-reference`` formats, and that import compiles 38 Lark
grammars: 1-4 s in every process, the twin daemon, each notebook kernel and each pytest worker
included. Nothing here validates those formats (our schemas use none, and the Kubernetes API server
does not check them either), so jsonschema is told the module is absent, which it handles by
skipping those two format checks.

Imported by ``rhaii_nb/__init__.py`` and, for pytest (whose nbval plugin imports jsonschema before
any conftest), by ``-p rhaii_nb.lean_imports`` in the pytest options.
"""

from __future__ import annotations

import sys

SKIPPED_MODULES = ("rfc3987_syntax",)


def skip_slow_optional_imports() -> None:
    """Mark the slow optional modules absent, unless jsonschema already imported them."""
    for name in SKIPPED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "import fails"


skip_slow_optional_imports()
