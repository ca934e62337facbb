"""Generation of the synthetic set: one recorded seed per image, batched, resumable.

The plan (which image gets which class, sampler, step count and seed) is a pure function of the
parameters. Images that share (class, sampler, steps) are batched in fixed chunks by index, and
every image has its own torch.Generator, so the set is the same whether it was made in one go or
resumed after a crash, and any row of metadata.csv regenerates its image with plain diffusers (bit
for bit with a contiguous UNet; channels-last on the CPU may round a rare value one grey level apart).

Initial latents always come from a CPU generator (diffusers draws them on the CPU and moves them
to the GPU), so a seed means the same starting noise on every machine; the row records the
device and dtype that turned that noise into its image. A render that comes out NaN or black
(fp16 overflow in the VAE, say) is caught before any clamping, and the image is drawn again
from a new seed derived from the old one; the row records the seed that made its image and
`reseeds.csv` every retry.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline
from PIL import Image
from tqdm.auto import tqdm

from dermsynth.contracts import METADATA_COLUMNS, REQUESTED_COLUMNS, RESEED_COLUMNS
from dermsynth.diffusion.base import load_pipeline
from dermsynth.diffusion.plan import GenerateConfig, device_and_dtype, pipeline_dtype, plan
from dermsynth.errors import UserValueError
from dermsynth.files import dir_fingerprint, fingerprint
from dermsynth.parallel import torch_threads
from dermsynth.paths import replace_output_dir

SAMPLERS = {"euler": EulerDiscreteScheduler, "euler_a": EulerAncestralDiscreteScheduler, "plms": PNDMScheduler}


def make_scheduler(name: str, base_config: dict):
    """A diffusers scheduler of the named family, on the base model's noise schedule."""
    if name not in SAMPLERS:
        raise UserValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    extra = {"skip_prk_steps": True} if name == "plms" else {}  # PLMS = PNDM without Runge-Kutta warm-up
    return SAMPLERS[name].from_config(base_config, **extra)


def reseed(seed: int, attempt: int) -> int:
    """The seed of the `attempt`-th retry of an image (a pure function: resumes make the same retries)."""
    return int(np.random.SeedSequence([seed, 0x5EED, attempt]).generate_state(1)[0])


def prepare_pipeline(base_dir: str | Path, lora_dir: str | Path | None, cfg: GenerateConfig,
                     device: str | torch.device | None = None) -> StableDiffusionPipeline:
    """The pipeline on `device` (default: CUDA if present; under several processes, the rank's own)."""
    kind, dtype = device_and_dtype(cfg)
    device = device or kind
    if kind == "cpu" and cfg.threads > 0:
        torch.set_num_threads(torch_threads(cfg.threads))
    pipe = load_pipeline(base_dir, dtype=dtype)
    if lora_dir:
        pipe.load_lora_weights(str(lora_dir))
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if cfg.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    if cfg.compile:
        pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs", fullgraph=False)
    return pipe


def bad_render(image: np.ndarray) -> str:
    """Why a render (floats in [0, 1], before any clamping or rounding) is unusable, or ''."""
    if not np.isfinite(image).all():
        return "not finite"  # NaN or inf (not "nan": CSV readers take that for a missing value)
    if image.max() <= 1.0 / 255:
        return "black"
    return ""


@torch.inference_mode()
def _render(pipe: StableDiffusionPipeline, rows: pd.DataFrame, seeds: list[int]) -> np.ndarray:
    first = rows.iloc[0]
    # CPU generators: the same starting noise on any device (diffusers moves it to the pipeline's)
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    return pipe(prompt=list(rows.prompt), negative_prompt=list(rows.negative_prompt),
                num_inference_steps=int(first.steps), guidance_scale=float(first.cfg), generator=gens,
                output_type="np").images


def render_chunk(pipe: StableDiffusionPipeline, rows: pd.DataFrame, base_sched_config: dict,
                 max_reseeds: int = 3) -> tuple[list[np.ndarray], list[dict]]:
    """The images of one chunk (all rows share sampler, steps, prompt) as uint8 arrays, and the
    retries of bad renders. An image still bad after `max_reseeds` retries is returned black, so
    the synthetic gate fails on it (and `reseeds.csv` says why)."""
    pipe.scheduler = make_scheduler(rows.iloc[0].sampler, base_sched_config)
    images = list(_render(pipe, rows, list(rows.seed)))
    retries = []
    for i, row in enumerate(rows.itertuples()):
        reason, seed, attempt = bad_render(images[i]), int(row.seed), 0
        first_reason = reason
        while reason and attempt < max_reseeds:
            attempt += 1
            seed = reseed(int(row.seed), attempt)
            pipe.scheduler = make_scheduler(row.sampler, base_sched_config)
            images[i] = _render(pipe, rows.iloc[[i]], [seed])[0]
            reason = bad_render(images[i])
        if first_reason:
            retries.append({"image_id": row.image_id, "label": row.label, "first_seed": int(row.seed), "seed": seed,
                            "attempts": attempt, "reason": first_reason, "recovered": not reason})
        if reason:
            images[i] = np.zeros_like(images[i])
    return [np.round(im * 255).clip(0, 255).astype(np.uint8) for im in images], retries


def _save_png(arr: np.ndarray, dst: Path) -> None:
    tmp = dst.with_suffix(".tmp.png")
    Image.fromarray(arr).save(tmp)
    os.replace(tmp, dst)  # atomic: a killed run never leaves a half-written image behind


def _render_missing(df: pd.DataFrame, ours: pd.DataFrame, cfg: GenerateConfig, base_dir: str,
                    lora_dirs: dict[str, str], work: Path, repo_root: Path, device, rank: int, world: int,
                    stop_after_chunks: int | None) -> tuple[int, bool]:
    """Render the images of `ours` (this process's chunks of the plan `df`) that are not yet in `work`, one
    class's pipeline at a time; returns how many images it made and whether it stopped after
    `stop_after_chunks` (a test's interruption)."""
    todo = ours[[not Path(p).is_file() for p in ours.work_path]]
    made, chunks_done, t0 = 0, 0, time.perf_counter()
    bar = tqdm(total=len(ours), initial=len(ours) - len(todo), desc=f"generate [{rank + 1}/{world}]" if world > 1
               else "generate", unit="img", mininterval=2.0, disable=rank != 0)
    for label in cfg.classes:
        chunks = todo[todo.label == label].groupby("chunk", sort=False)
        if len(todo[todo.label == label]) == 0:
            continue
        pipe = prepare_pipeline(repo_root / base_dir, repo_root / lora_dirs[label], cfg, device)
        base_sched = dict(pipe.scheduler.config)
        for _, missing in chunks:
            # regenerate the whole chunk, so the batch (and thus every byte) is what it always is
            rows = df[df.chunk == missing.chunk.iloc[0]]
            arrays, retries = render_chunk(pipe, rows, base_sched, cfg.max_reseeds)
            # the retry record goes first: images on disk mean the chunk is done
            _chunk_record(work, rows.chunk.iloc[0]).write_text(json.dumps(retries))
            for arr, (_, r) in zip(arrays, rows.iterrows()):
                if not Path(r.work_path).is_file():
                    _save_png(arr, Path(r.work_path))
            made += len(missing)
            bar.update(len(missing))
            bar.set_postfix(rate=f"{made / (time.perf_counter() - t0):.1f} img/s", refresh=False)
            chunks_done += 1
            if stop_after_chunks is not None and chunks_done >= stop_after_chunks:
                bar.close()
                return made, True
        del pipe
    bar.close()
    return made, False


def generate(cfg: GenerateConfig, base_dir: str, lora_dirs: dict[str, str], out_dir: str | Path,
             work_root: str | Path, repo_root: str | Path = ".", stop_after_chunks: int | None = None,
             state=None, requested: dict[str, dict[str, list[str]]] | None = None) -> dict:
    """Make (or finish making) the synthetic set; returns a summary with the measured images/s.
    `requested`: the traits each image asks for (plan).

    `state`: an accelerate PartialState under `accelerate launch`. Each process renders every
    num_processes-th chunk of the fixed chunk plan on its own device (per-image seeds, so the bytes
    are those of a one-process run), then the main process alone publishes the set."""
    repo_root, out_dir = Path(repo_root), Path(out_dir)
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    main = rank == 0
    rel_out = os.path.relpath(out_dir.resolve(), repo_root.resolve())
    df = plan(cfg, base_dir, lora_dirs, rel_out, requested)
    # the asked-for traits join the work folder's name only when there are any (a plain run keeps its folder)
    key = fingerprint(asdict(cfg), dir_fingerprint(repo_root / base_dir),
                      {k: dir_fingerprint(repo_root / v) for k, v in lora_dirs.items()}, str(torch.__version__),
                      *([requested] if requested else []))
    work = Path(work_root) / f"generate-{key}"
    df["work_path"] = [str(work / "images" / lab / f"{iid}.png") for lab, iid in zip(df.label, df.image_id)]
    for label in cfg.classes:
        (work / "images" / label).mkdir(parents=True, exist_ok=True)
    mine = set(list(dict.fromkeys(df.chunk))[rank::world])
    ours = df[df.chunk.isin(mine)]
    t0 = time.perf_counter()
    device = state.device if state is not None and state.device.type == "cuda" else None
    made, stopped = _render_missing(df, ours, cfg, base_dir, lora_dirs, work, repo_root, device, rank, world,
                                    stop_after_chunks)
    if stopped:
        return {"stopped_early": True, "made": made}
    elapsed = time.perf_counter() - t0
    if state is not None:
        state.wait_for_everyone()  # every chunk is on disk before the set is published
    if not main:
        return {"rank": rank, "generated_now": made}
    df, retries = _publish(df, work, out_dir, repo_root, cfg.classes)
    return {"images": len(df), "reseeded": int(len(retries)),
            "unrecovered": int((~retries.recovered.astype(bool)).sum()),
            "per_class": df.groupby("label").size().to_dict(), "per_sampler": df.groupby("sampler").size().to_dict(),
            # with several processes: what the main process made, and how fast
            "timings": {"processes": world, "generated_now": made, "seconds": round(elapsed, 1),
                        "images_per_second": round(made / elapsed, 2) if made else None}}


def _publish(df: pd.DataFrame, work: Path, out_dir: Path, repo_root: Path,
             classes: tuple[str, ...] | list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copy the finished set from the work folder: the DVC output holds exactly the planned images, their
    metadata (each row with the seed that made its image) and the retries; returns both tables."""
    replace_output_dir(out_dir, "paths.synthetic")  # only a folder the pipeline made is deleted
    for label in classes:
        (out_dir / "images" / label).mkdir(parents=True, exist_ok=True)
    digests = []
    for src, dst in zip(df.work_path, df.path):
        shutil.copyfile(src, repo_root / dst)
        digests.append(hashlib.sha256((repo_root / dst).read_bytes()).hexdigest())
    df = df.assign(sha256=digests)
    retries = pd.DataFrame([r for c in df.chunk.unique() for r in json.loads(_chunk_record(work, c).read_text())],
                           columns=RESEED_COLUMNS)
    df = df.assign(seed=df["image_id"].map(dict(zip(retries.image_id, retries.seed))).fillna(df["seed"]).astype("int64"))
    df[METADATA_COLUMNS + [c for c in REQUESTED_COLUMNS if c in df]].to_csv(out_dir / "metadata.csv", index=False)
    retries.to_csv(out_dir / "reseeds.csv", index=False)
    return df, retries


def _chunk_record(work: Path, chunk: str) -> Path:
    d = work / "retries"
    d.mkdir(parents=True, exist_ok=True)
    return d / (chunk.replace("/", "_") + ".json")


def regenerate(row: dict | pd.Series, repo_root: str | Path = ".", threads: int = 2) -> np.ndarray:
    """One image again from its metadata row alone, with plain diffusers calls, on the row's
    device kind and dtype (the bytes depend on both)."""
    repo_root = Path(repo_root)
    if all(pd.isna(row.get(k)) or str(row.get(k)) == "" for k in ("lora", "device")):  # an imported image
        raise UserValueError(f"{row['image_id']} was imported from {row.get('source') or 'a released set'} "
                             f"({row.get('source_file') or 'its file'}): no LoRA and base model to make it again")
    device = str(row.get("device") or "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserValueError(f"{row['image_id']} was made on cuda in {row.get('dtype')}; its bytes come back only "
                             "on a CUDA machine (on this one the same seed gives a similar, not identical, image)")
    if device == "cpu" and threads > 0:
        torch.set_num_threads(torch_threads(threads))
    pipe = StableDiffusionPipeline.from_pretrained(repo_root / row["base_model"], safety_checker=None,
                                                   requires_safety_checker=False, local_files_only=True,
                                                   dtype=pipeline_dtype(str(row.get("dtype") or "float32")))
    pipe.load_lora_weights(str(repo_root / row["lora"]))
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(row["sampler"], dict(pipe.scheduler.config))
    # an empty negative prompt (the demo's) is a missing value once metadata.csv is read by pandas
    negative = "" if pd.isna(row.get("negative_prompt")) else str(row["negative_prompt"])
    out = pipe(prompt=row["prompt"], negative_prompt=negative, num_inference_steps=int(row["steps"]),
               guidance_scale=float(row["cfg"]), generator=torch.Generator("cpu").manual_seed(int(row["seed"])),
               output_type="np").images[0]
    return np.round(out * 255).clip(0, 255).astype(np.uint8)
