"""Judges: images -> scores (pointwise) or pairs -> verdicts (pairwise), plus wrappers.

`BUILTINS` names the judge kinds autojudge ships, as "module:class" strings, so the
registry can list them without importing any (a judge module may pull in torch)."""

BUILTINS = {
    "ocr": "autojudge.judges.ocr:OCRJudge",
    "clip": "autojudge.judges.clip_score:CLIPScoreJudge",
    "aesthetic": "autojudge.judges.aesthetic:AestheticJudge",
    "vlm": "autojudge.judges.vlm_preference:VLMPreferenceJudge",
    "preservation": "autojudge.judges.preservation:PreservationJudge",
    "pickscore": "autojudge.judges.preference:PickScoreJudge",
    "hpsv21": "autojudge.judges.preference:HPSv21Judge",
    "imagereward": "autojudge.judges.image_reward:ImageRewardJudge",
    "mps": "autojudge.judges.mps:MPSJudge",
    "hpsv3": "autojudge.judges.hpsv3:HPSv3Judge",
    "vqascore": "autojudge.judges.vqascore:VQAScoreJudge",
    "dsg": "autojudge.judges.dsg:DSGJudge",
}
