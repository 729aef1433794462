"""The pipeline package's layers (include/ai_tweets/README.md): a module imports only from its
own layer's allowed neighbours and the layers below, never from a layer above."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "include" / "ai_tweets"
BASE = ROOT / "include" / "stackbase"  # under the pipeline and the local stack: standard library only

# Lowest first. Keep in step with include/ai_tweets/README.md.
LAYERS: dict[str, set[str]] = {
    "foundation": {"__init__", "retrying", "tables", "schema", "urls", "markup", "vocabulary", "generator", "assets"},
    "services": {"storage", "kafka", "x_api", "airflow_api", "serving", "spark", "tracking", "model_files"},
    "blocks": {"stream", "health", "sources", "dataset", "labeling", "label_model", "model", "precision"},
    "stages": {"capture", "ingest", "prepare", "annotation", "train", "promotion", "classify", "retweet", "shadow",
               "review", "spot_check", "retention", "dashboard"},
    "orchestration": {"jobs", "demo", "quality", "dag_support", "cli"},
}
# Stages talk through tables and Assets, not each other's code; the one part a stage owns:
STAGE_PARTS = {("classify", "retweet"), ("classify", "shadow"), ("review", "retweet"),
               ("spot_check", "annotation")}  # the spot-check asks people the annotate stage's way


def _imports(module: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "ai_tweets":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ai_tweets."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ai_tweets."))
    return found - {module.stem}


def _layer(module: str) -> int:
    for rank, members in enumerate(LAYERS.values()):
        if module in members:
            return rank
    raise AssertionError(f"ai_tweets/{module}.py is in no layer: add it to LAYERS and the package README")


def test_every_module_has_a_layer():
    for module in PACKAGE.glob("*.py"):
        _layer(module.stem)


def test_imports_never_go_up_and_stages_do_not_import_each_other():
    broken = []
    for path in sorted(PACKAGE.glob("*.py")):
        own = _layer(path.stem)
        for imported in sorted(_imports(path)):
            other = _layer(imported)
            sideways_stage = other == own == _layer("classify") and (path.stem, imported) not in STAGE_PARTS
            if other > own or sideways_stage:
                broken.append(f"{path.stem} ({list(LAYERS)[own]}) imports {imported} ({list(LAYERS)[other]})")
    assert broken == [], "imports against the layering rule:\n" + "\n".join(broken)


def test_the_rule_catches_an_upward_import(tmp_path):
    module = tmp_path / "storage.py"
    module.write_text("from ai_tweets.classify import ensure_tables\n")
    assert _layer("classify") > _layer(module.stem) and "classify" in _imports(module)


def test_the_package_readme_names_every_module():
    readme = (PACKAGE / "README.md").read_text()
    missing = [m.stem for m in PACKAGE.glob("*.py") if m.stem != "__init__" and f"`{m.stem}`" not in readme]
    assert missing == [], f"modules the package README does not describe: {missing}"


def test_only_settings_and_the_entry_points_read_the_environment():
    """Every setting comes through `Settings` (or a settings function the DAG files call at
    parse time); only the process entry points look at their own environment."""
    import re

    reads = re.compile(r"os\.environ\s*(\.get|\[)|os\.getenv|\*\*os\.environ|in os\.environ|\benvironment\(\)")
    allowed = {"settings.py", "cli.py", "jobs.py"}
    files = [*PACKAGE.glob("*.py"), *BASE.glob("*.py"), *(ROOT / "dags").glob("*.py")]
    found = [f"{path.name}:{number}: {line.strip()}" for path in files if path.name not in allowed
             for number, line in enumerate(path.read_text().splitlines(), 1) if reads.search(line)]
    assert found == [], "environment reads outside settings:\n" + "\n".join(found)


def _top_level_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def test_the_base_under_pipeline_and_stack_imports_only_the_standard_library():
    """`stackbase` (settings, errors, processes) runs before any environment is installed."""
    import sys

    outside = {f"{path.name}: {name}" for path in BASE.glob("*.py") for name in _top_level_imports(path)
               if name not in sys.stdlib_module_names and name not in {"__future__", "stackbase"}}
    assert outside == set(), f"stackbase must stay standard-library only: {sorted(outside)}"


def test_the_local_stack_does_not_import_the_pipeline_package():
    """The local stack starts the services the pipeline uses; it stands on `stackbase` only, so
    the pipeline package is free to import what its environment installs."""
    found = [f"{path.name}: {name}" for path in sorted((ROOT / "localstack").glob("*.py"))
             for name in _top_level_imports(path) if name.startswith("ai_tweets")]
    assert found == [], f"localstack imports the pipeline: {found}"


def test_nothing_edits_sys_path():
    """The packages are found through PYTHONPATH (the Makefile, the stack's processes) or an
    install (pyproject.toml), never by a module that edits `sys.path`."""
    import re

    edit = re.compile(r"sys\.path\s*(\.insert|\.append|\.extend|\[[^\]]*\]\s*=|\s*\+=)")
    files = [path for folder in ("include", "localstack", "dags", "spark_jobs", "benchmarks", "tests")
             for path in (ROOT / folder).rglob("*.py")]
    found = [f"{path.relative_to(ROOT)}:{number}" for path in files if path.name != "test_layers.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if edit.search(line)]
    found += [f"Makefile:{n}" for n, line in enumerate((ROOT / "Makefile").read_text().splitlines(), 1)
              if edit.search(line)]
    assert found == [], f"sys.path edited in: {found}"
