"""The README's command blocks that tests/integration/test_readme_sections.py runs, verbatim:
(section heading, bash block number under it) -> {name: command}. A test checks each list
against the README, so a README command cannot change (or be added) untested."""

SECTIONS = {
    ("## Hosted models on fal.ai", 0): {
        "key": 'export FAL_KEY="key-id:key-secret"          # or FAL_KEY_ID + FAL_KEY_SECRET',
        "fal": "python -m autojudge model=[flux_schnell,fast_sdxl,sd35_medium] judge=[ocr,clip] "
               "suite=starter suite.tags=[text_rendering] suite.limit=20 "
               "model.flux_schnell.concurrency=32",
    },
    ("## Local diffusers pipelines", 0): {
        "hub": "python -m autojudge model=[sdxl_turbo,blank] judge=[ocr,clip] suite.limit=20",
        "folder": "python -m autojudge model=[sd15,blank] model.sd15.model=/models/my-sd15 "
                  "model.sd15.device=cuda model.sd15.dtype=float16 model.sd15.batch_size=8 "
                  "model.sd15.num_inference_steps=25",
        "checkpoints": "python -m autojudge model=[sd15] "
                       "'+model.ck500={kind: diffusers, model: /models/sd15, "
                       "checkpoint: /runs/ft/checkpoint-500}' "
                       "'+model.ck1000={kind: diffusers, model: /models/sd15, "
                       "checkpoint: /runs/ft/checkpoint-1000}'",
        "lora": "python -m autojudge model=[sd15,blank] model.sd15.lora=[/loras/watercolor] "
                "model.sd15.lora_scales=[0.8]",
        "editing": "python -m autojudge suite=editing model=[sd15,fast_sdxl] "
                   "judge=[preservation,clip]",
    },
    ("## Judges", 0): {
        "clip": "python -m autojudge judge=[clip,aesthetic,ocr] "
                "judge.clip.pretrained=/models/open_clip_vit_b32.bin "
                "judge.aesthetic.head=/models/sac+logos+ava1-l14-linearMSE.pth",
        "openai": "OPENAI_API_KEY=... python -m autojudge judge=[vlm] judge.vlm.model=gpt-4o-mini "
                  "judge.vlm.criterion=prompt_alignment",
        "server": "python -m autojudge judge=[vlm] judge.vlm.base_url=http://localhost:8000/v1 "
                  "judge.vlm.model=Qwen/Qwen2.5-VL-7B-Instruct judge.vlm.api_key_env=''",
        "local": "python -m autojudge judge=[vlm] judge.vlm.backend=transformers "
                 "judge.vlm.model=/models/Qwen2-VL-2B-Instruct",
    },
    ("## Judges", 1): {
        "validate": "python -m autojudge.validate judge=[ocr]          # offline",
    },
    ("## Rating any battle log", 0): {
        "rate": "python -m autojudge.rate battles.jsonl --bootstrap 1000 --seed 0",
        "json": "python -m autojudge.rate human_votes.csv --json        # {\"models\": [...]}",
    },
    ("## Release gates, adaptive battles, human votes", 0): {
        "gate": "python -m autojudge.gate runs/release --baseline sdxl-v1 --candidate sdxl-v2 "
                "--margin 25",
        "in_run": "python -m autojudge model=[...] gate.baseline=sdxl-v1 "
                  "gate.candidate=sdxl-v2   # inside a run",
        "control": "python -m autojudge.gate runs/release --baseline sdxl-v1 --candidate "
                   "sdxl-v2 --control contrast",
        "adaptive": "python -m autojudge judge=[vlm] battles.schedule=adaptive "
                    "battles.target_ci_width=50",
        "human": "python -m autojudge human_votes.path=votes.csv",
    },
    ("## Report", 0): {
        "rebuild": "python -m autojudge.report runs/2026-01-01_starter            "
                   "# rebuild from a finished run",
        "options": "python -m autojudge.report runs/x --max-prompts 300 --thumbnail-px 256 "
                   "--no-plots",
    },
    ("## Sweeps", 0): {
        "variants": "python -m autojudge model=[sd15,blank] "
                    "'+model.sd15.sweep.guidance_scale=[3,5,7]'",
        "multirun": "python -m autojudge -m model=[typeset,blank] model.typeset.min_font_size=2 "
                    "model.typeset.max_font_size=4,6,24",
        "compare": "python -m autojudge.compare runs/<time>_starter_sweep      "
                   "# -> <sweep>/compare/",
        "install": "pip install -e '.[sweep]'          "
                   "# in a checkout (an installed package: 'autojudge[sweep]')",
        "optuna": "python -m autojudge -m hydra/sweeper=optuna hydra.sweeper.direction=maximize "
                  "hydra.sweeper.n_trials=12 'model.typeset.max_font_size=int(interval(2,16))' "
                  "model=[typeset,blank] model.typeset.min_font_size=2 "
                  "sweep.reference=blank sweep.objective=score sweep.judge=ocr",
    },
    ("## Arena", 0): {
        "install": "pip install -e '.[arena]'                                   "
                   "# starlette, uvicorn, sse-starlette",
        "serve": "python -m autojudge.arena runs/2024-05-01_starter            "
                 "# http://127.0.0.1:8000/",
        "sweep": "python -m autojudge.arena runs/my_sweep --sampling adaptive --tag text_rendering",
        "kwise": "python -m autojudge.arena runs/2024-05-01_starter --k 4     "
                 "# four images at once: best of 4, or rank them",
        "public": "python -m autojudge.arena runs/a runs/b --read-only --host 0.0.0.0 --public "
                  "--port 8080",
        "export": "python -m autojudge.arena runs/2024-05-01_starter --export votes.jsonl   "
                  "# the human battle log",
        "human": "python -m autojudge human_votes.path=votes.jsonl            "
                 "# the run again, with judge \"human\"",
        "rate": "python -m autojudge.rate votes.jsonl",
    },
    ("## Running on a Ray cluster", 0): {
        "install": "pip install -e '.[ray,diffusers,clip]'   "
                   "# in a checkout, on the driver and every node, same versions",
        "local": "python -m autojudge executor=ray",
        "cluster": "python -m autojudge executor=ray executor.address=auto "
                   "model=[sd15,sdxl_turbo] judge=[clip,aesthetic,ocr] suite=partiprompts "
                   "suite.path=/data/PartiPrompts.tsv suite.seeds=[0,1] "
                   "+executor.resources.sd15.num_gpus=1 +executor.resources.sdxl_turbo.num_gpus=1 "
                   "+executor.resources.clip.num_gpus=0.25 "
                   "+executor.resources.aesthetic.num_gpus=0.25 "
                   "store.blobs=s3://my-bucket/autojudge-images     "
                   "# shared image storage (pip install s3fs)",
        "client": "python -m autojudge executor=ray executor.address=ray://head-node:10001 ...",
    },
}
