"""Files that ship inside the package (the demo recipe, label maps, zero-shot class splits) and the per-user cache.

Recipes and docs name label maps and class splits by their checkout paths (`data/label_maps/ntu60.txt`,
`data/zero_shot/ntu60_55_5.json`). The package holds them under the same relative paths, so that those names also
work where the package is installed and no checkout is around.
"""

import os


PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
RECIPES_DIR = os.path.join(PACKAGE_DIR, "recipes")
# The training command's arguments when it is given none.
DEMO_RECIPE = os.path.join(RECIPES_DIR, "synthetic_demo.json")


def packaged_recipes() -> list[str]:
    """File names of the recipes inside the package (`synthetic_demo.json`, ...)."""
    return sorted(name for name in os.listdir(RECIPES_DIR) if name.endswith(".json"))


def packaged_recipe(name: str) -> str | None:
    """The packaged recipe called `name` (a bare file name such as `synthetic_demo.json`), or None."""
    if os.path.basename(name) != name or name not in packaged_recipes():
        return None
    return os.path.join(RECIPES_DIR, name)


def packaged_data_file(path: str | os.PathLike) -> str | None:
    """The packaged copy of a relative `data/...` path (`data/label_maps/ntu60.txt`), or None if there is none."""
    path = os.fspath(path)
    if os.path.isabs(path):
        return None
    parts = os.path.normpath(path).split(os.sep)
    if parts[0] != "data":
        return None
    candidate = os.path.join(PACKAGE_DIR, *parts)
    return candidate if os.path.isfile(candidate) else None


def cache_dir() -> str:
    """Where generated files go (the synthetic demo poses): `$SKELETONCLIP_CACHE`, else
    `$XDG_CACHE_HOME/skeletonclip`, else `~/.cache/skeletonclip`. Not created here."""
    if os.environ.get("SKELETONCLIP_CACHE"):
        return os.path.expanduser(os.environ["SKELETONCLIP_CACHE"])
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.join(os.path.expanduser(xdg_cache), "skeletonclip")
