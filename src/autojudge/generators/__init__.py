"""Generators: requests -> encoded images (+ latency, cost, typed failures).

`BUILTINS` names the generator kinds autojudge ships, as "module:class" strings, so the
registry can list them without importing any (a generator module may pull in torch)."""

BUILTINS = {
    "blank": "autojudge.generators.baselines:BlankGenerator",
    "noise": "autojudge.generators.baselines:NoiseGenerator",
    "typeset": "autojudge.generators.baselines:TypesetGenerator",
    "folder": "autojudge.generators.folder:FolderGenerator",
    "fal": "autojudge.generators.fal:FalGenerator",
    "diffusers": "autojudge.generators.diffusers_local:DiffusersGenerator",
}
