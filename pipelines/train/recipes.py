"""Named, versioned pretraining recipes: the paper's settings as TOML files users can run
and override.

A recipe is ``pipelines/train/recipes/NAME.toml`` (or any TOML file with the same shape)::

    name = "ucf101_r2plus1d_112"
    version = 1
    description = "..."
    [settings]            # any PretrainSettings fields except cache and run_dir
    arch = "r2plus1d_18"
    ...

Settings resolve as: the dataclass defaults, then the recipe, then the options the user
actually gave on the command line. The result records ``recipe = "NAME@VERSION"``.

>>> settings = resolve_settings(load_recipe("synth_small"), {"cache": "c.zarr", "run_dir": "run", "epochs": 2})
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from pipelines.fame import BETA_AUTO
from pipelines.settings import SettingsError
from pipelines.train.settings import PretrainSettings, settings_fields

RECIPES_DIR = Path(__file__).with_name("recipes")
# Where the data and the run go is the user's, never a recipe's.
PER_RUN = ("cache", "run_dir", "recipe")


class RecipeError(SettingsError):
    """A recipe that cannot be found or read."""


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    description: str = ""
    settings: dict = field(default_factory=dict)  # PretrainSettings fields

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def available_recipes() -> list[str]:
    """Names of the recipes shipped with fame."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.toml"))


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped recipe's file by name, or the given path to a TOML file."""
    text = str(name_or_path)
    shipped = RECIPES_DIR / f"{text}.toml"
    if text.endswith(".toml") or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise RecipeError(f"{path}: no recipe file there")
        return path
    if shipped.is_file():
        return shipped
    raise RecipeError(f"no recipe {text!r}; shipped: {', '.join(available_recipes())} (or give a .toml path)")


def read_recipe_file(name_or_path: str | os.PathLike) -> tuple[Path, dict]:
    """(path, parsed TOML) of a shipped recipe's name or a .toml file; RecipeError if unreadable."""
    path = recipe_path(name_or_path)
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise RecipeError(f"{path}: not a readable TOML recipe ({error})") from None


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """Read and check a recipe (unknown settings are refused, not ignored)."""
    path, content = read_recipe_file(name_or_path)
    settings = content.get("settings", {})
    if not isinstance(settings, dict):
        raise RecipeError(f"{path}: [settings] must be a table")
    known = settings_fields()
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise RecipeError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    for name, value in settings.items():
        default = known[name]
        if name == "beta" and value == BETA_AUTO:
            continue
        expected = float if isinstance(default, float) else type(default)
        if default not in (None, MISSING) and not isinstance(value, (int, float) if expected is float else expected):
            raise RecipeError(f"{path}: {name} = {value!r} should be a {expected.__name__}")
    misplaced = sorted(set(settings) & set(PER_RUN))
    if misplaced:
        raise RecipeError(f"{path}: {', '.join(misplaced)} belong on the command line, not in a recipe")
    version = content.get("version", 1)
    if not isinstance(version, int):
        raise RecipeError(f"{path}: version must be an integer")
    return Recipe(
        name=str(content.get("name", path.stem)), version=version,
        description=str(content.get("description", "")), settings=settings,
    )


def resolve_settings(recipe: Recipe | None, overrides: dict) -> PretrainSettings:
    """Defaults, then ``recipe``, then ``overrides`` (only the options the user gave)."""
    values = dict(recipe.settings) if recipe is not None else {}
    values.update(overrides)
    if recipe is not None:
        values["recipe"] = recipe.label
    missing = [name for name, default in settings_fields().items() if default is MISSING and name not in values]
    if missing:
        raise SettingsError(f"missing setting(s): {', '.join(missing)}")
    settings = PretrainSettings(**values)
    settings.validate()
    return settings
