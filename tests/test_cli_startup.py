"""What ``skypile`` loads before it does anything: a command imports only what it uses.

Start-up is paid per command and per extraction helper: ``skypile extract`` over a
hundred pages spent ~0.4 s of CPU importing pyarrow (through ``skypile.io`` and
``skypile.document``) that it never used (``bench/results/extraction_speed.md``).
Each check runs a fresh interpreter, the way a user's shell does.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pyarrow", "numpy", "apache_beam", "torch", "matplotlib", "tqdm", "trafilatura", "resiliparse")

PAGE = (
    "<html><head><title>Stale bread</title></head><body><article><h1>Why bread goes stale</h1><p>"
    + "A loaf left on the counter loses some moisture, but the main reason it turns hard is that the starch "
    "inside it slowly recrystallises after baking. " * 3
    + "</p></article></body></html>"
)


def _loaded_after(code: str) -> list[str]:
    """The heavy top-level packages a fresh interpreter holds after running ``code``."""
    probe = code + f"\nimport sys\nprint('MODULES=' + ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("MODULES="))
    return [m for m in line[len("MODULES="):].split(",") if m]


def test_help_loads_no_heavy_package():
    code = "from skypile.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []


def test_extract_loads_no_table_or_model_package(tmp_path):
    """The command's process reads files and writes JSON lines; trafilatura and resiliparse load in the
    helper process that bounds each page (what the helper's code loads: test_extract_bounds)."""
    (tmp_path / "a.html").write_text(PAGE, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = f"from skypile.cli import main\nassert main(['extract', {str(tmp_path / 'a.html')!r}, '--jsonl', {str(out)!r}, '--no-progress']) == 0"
    assert _loaded_after(code) == []
    row = json.loads(out.read_text(encoding="utf-8"))
    assert row["reason"] is None and "recrystallises" in row["text"]


def test_a_run_still_gets_its_arrow_names_from_document():
    """The Arrow half moved to ``skypile.schema``; ``from skypile.document import DOCUMENT_SCHEMA`` still works."""
    from skypile import document, schema

    assert document.DOCUMENT_SCHEMA is schema.DOCUMENT_SCHEMA and document.table_to_documents is schema.table_to_documents
