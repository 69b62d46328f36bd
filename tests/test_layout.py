"""The package layout: old module paths still resolve (with a warning), no import cycle, no oversized file."""

import ast
import importlib
import pathlib

import pytest

from sb3_ibrl.common import MOVED_MODULES

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1] / "sb3_ibrl"
MAX_LINES = 420  # "~400": split a module along the architecture when it grows past this

# one name that each old module exported, and where it lives now
MOVED_NAMES = {
    "augmentation": "random_shift",
    "bc": "train_bc",
    "buffers": "IBRLReplayBuffer",
    "demos": "load_episodes",
    "encoders": "ViTEncoder",
    "il": "as_il_policy",
    "networks": "ensemble_mlp",
    "q_networks": "has_image",
    "resnet": "ResNet18Extractor",
    "robomimic_hdf5": "read_episodes_for_env",
    "rollouts": "record_episodes",
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The package's modules that a file imports, at any level (lazy imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in modules}


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_module_paths_warn_and_resolve(old: str) -> None:
    name = MOVED_NAMES[old]
    new = next(
        importlib.import_module(target) for target in MOVED_MODULES[old] if hasattr(importlib.import_module(target), name)
    )
    with pytest.warns(DeprecationWarning, match=rf"sb3_ibrl\.common\.{old} moved: import {name} from {new.__name__}"):
        moved = getattr(importlib.import_module(f"sb3_ibrl.common.{old}"), name)
    assert moved is getattr(new, name)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        importlib.import_module(f"sb3_ibrl.common.{old}").no_such_name  # noqa: B018


def test_from_import_of_an_old_path_gives_the_new_object() -> None:
    with pytest.warns(DeprecationWarning):
        from sb3_ibrl.common.demos import Episode
    from sb3_ibrl.data.episodes import Episode as NewEpisode

    assert Episode is NewEpisode


def test_robomimic_writer_is_found_where_it_was_exported() -> None:
    import sb3_ibrl.data
    from sb3_ibrl.data.robomimic_writer import write_robomimic_hdf5

    assert sb3_ibrl.data.write_robomimic_hdf5 is write_robomimic_hdf5
    with pytest.warns(DeprecationWarning, match=r"import write_robomimic_hdf5 from sb3_ibrl\.data\.robomimic_writer"):
        from sb3_ibrl.common.robomimic_hdf5 import write_robomimic_hdf5 as old
    assert old is write_robomimic_hdf5


def test_no_import_cycle() -> None:
    files = {_module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    graph = {name: _imports(path, set(files)) - {name} for name, path in files.items()}
    # a package's __init__ re-exports its submodules: an edge from a submodule to its own package is not a cycle
    graph = {name: {dep for dep in deps if not name.startswith(dep + ".")} for name, deps in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_module_is_too_long() -> None:
    lengths = {str(path.relative_to(PACKAGE_ROOT)): len(path.read_text().splitlines()) for path in PACKAGE_ROOT.rglob("*.py")}
    assert lengths, "no module found"
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them along the architecture): {too_long}"
