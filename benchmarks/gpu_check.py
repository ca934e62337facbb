"""One GPU, a few minutes: the numbers the project's GPU stages depend on, in one table.

    python benchmarks/gpu_check.py [--json out.json]     # CUDA: SD1.5 architecture at 512 px, ViT-B/16 (~3-5 min)
    python benchmarks/gpu_check.py --tiny                # CUDA, tiny models: a first smoke test of a new device
    python benchmarks/gpu_check.py --cpu --tiny          # the same code paths on the CPU in seconds (the test)

Rows, each measured side by side in this one run, with warm-up and torch.cuda.synchronize:
  * generation images/s, 25 steps, CFG 7, Euler, fp16, batch 1 and batch 8: the project's path
    (dermsynth.diffusion.sample: plan -> prepare_pipeline -> render_chunk; channels_last, one CPU
    generator per image) against a plain diffusers StableDiffusionPipeline loop with the same
    weights, prompts, seeds and settings; the ratio is project / plain. No LoRA on either side.
  * LoRA training steps/s at 512 px, fp16 mixed precision, the paper's batch 2, through the
    project's own step (dermsynth.diffusion.lora._load_models and _train_steps, latents drawn from
    an in-memory LatentCache: the VAE encode is not part of a step), and its peak GPU memory.
  * classifier training images/s: timm ViT-B/16 at 224 px, bf16 autocast, batch 64, through the
    project's step (dermsynth.classify.loop.optimiser and train_epoch) on batches already on
    the device: the step, not JPEG decoding and augmentation.
  * determinism: one chunk rendered twice from its rows' CPU-generator seeds, byte-identical or not.
  * a 1-process DDP step (NCCL on CUDA, gloo on CPU) on a free localhost port, through the
    project's DDP wrapper (dermsynth.classify.loop.distributed) and training step.

SD1.5's architecture with random weights (dermsynth.diffusion.sd15; nothing is downloaded), saved
once as a diffusers directory (fp16 on CUDA) that both generation paths and the LoRA step load.
Random weights draw noise, not lesions: this measures cost, not quality.

Exit status: 0 all measured; 1 the determinism check found different bytes; 2 nothing measured
(no CUDA without --cpu); 3 a row failed with an error (its note says which).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

# the paper's negative prompt (configs/paper.yaml); the prompt is the project's default
PROMPT = "a dermoscopic image of sks {label} lesion"
NEGATIVE = "blurry, lowres, low quality, cartoon, drawing, text, watermark"


@dataclass(frozen=True)
class Profile:
    arch: str  # sd15 | tiny
    size: int
    steps: int
    gen_warm: int  # warm-up chunks per batch size (and per path)
    gen_timed: dict  # batch size -> timed chunks
    det_batch: int
    lora_batch: int
    lora_warm: int
    lora_steps: int
    vit: str
    vit_size: int
    vit_batch: int
    vit_warm: int
    vit_steps: int
    guidance: float = 7.0
    batches: tuple[int, ...] = (1, 8)


FULL = Profile("sd15", 512, 25, 1, {1: 4, 8: 2}, 2, 2, 3, 20, "vit_base_patch16_224", 224, 64, 5, 30)
TINY = Profile("tiny", 64, 2, 1, {1: 2, 8: 1}, 2, 2, 1, 3, "vit_tiny_patch16_224", 32, 4, 1, 3)


@dataclass
class Row:
    name: str
    settings: str
    value: float | None = None
    unit: str = ""
    ratio: float | None = None
    status: str = "skipped"  # ok | skipped | error | identical | DIFFERENT | inconclusive
    note: str = ""


@dataclass
class Run:
    device: object  # torch.device
    dtype: object  # torch.dtype of generation and LoRA weights
    p: Profile
    root: Path
    threads: int
    rows: list[Row] = field(default_factory=list)
    phase_s: dict = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def dtype_name(self) -> str:
        return str(self.dtype).split(".")[-1]


def _gb(n_bytes: float) -> float:
    return round(n_bytes / 1024**3, 2)


def _release(run: Run) -> None:
    gc.collect()
    if run.cuda:
        import torch

        torch.cuda.empty_cache()


# ---------------------------------------------------------------- base model


def build_base(run: Run) -> Path:
    """The random-weight base model as a diffusers directory (what models/base/ holds in the pipeline)."""
    import torch

    torch.manual_seed(0)
    if run.p.arch == "sd15":
        from dermsynth.diffusion.sd15 import build_sd15_random

        pipe = build_sd15_random(run.p.size)
    else:
        from dermsynth.diffusion.tiny import TinyConfig, build_tiny_pipeline

        pipe = build_tiny_pipeline(TinyConfig(image_size=run.p.size, seed=0))
    if run.dtype != torch.float32:
        pipe.to(dtype=run.dtype)  # fp16 files on CUDA: half the disk and load time, the same weights for every path
    path = run.root / "models" / "base"
    pipe.save_pretrained(path)
    del pipe
    gc.collect()
    return path


# ---------------------------------------------------------------- generation


def _gen_cfg(run: Run, batch: int, n: int):
    from dermsynth.diffusion.sample import GenerateConfig

    return GenerateConfig(n_per_class=n, classes=("malignant",), samplers=("euler",), steps_min=run.p.steps,
                          steps_max=run.p.steps, guidance_scale=run.p.guidance, prompt=PROMPT, negative_prompt=NEGATIVE,
                          batch_size=batch, threads=run.threads, dtype=run.dtype_name(), channels_last=True,
                          compile=False, max_reseeds=0, seed=0)  # no retries: a retry would distort the timing


def _chunks(run: Run, batch: int, n_chunks: int, seed: int = 0) -> list:
    """The project's plan of n_chunks chunks of `batch` images (rows with their per-image seeds)."""
    from dataclasses import replace

    from dermsynth.diffusion.sample import plan

    cfg = replace(_gen_cfg(run, batch, batch * n_chunks), seed=seed)
    df = plan(cfg, "models/base", {"malignant": ""}, "data/synthetic")
    return [rows for _, rows in df.groupby("chunk", sort=False)]


def _plain_pipe(run: Run, base: Path):
    """What a script written from the diffusers docs does, at the same dtype and sampler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True, dtype=run.dtype)
    pipe.to(run.device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe


def _plain_render(pipe, rows, guidance: float):
    import numpy as np
    import torch

    with torch.inference_mode():
        ims = pipe(prompt=list(rows.prompt), negative_prompt=list(rows.negative_prompt),
                   num_inference_steps=int(rows.steps.iloc[0]), guidance_scale=guidance,
                   generator=[torch.Generator("cpu").manual_seed(int(s)) for s in rows.seed], output_type="np").images
    return [np.round(im * 255).clip(0, 255).astype(np.uint8) for im in ims], ims


def _timed(run: Run, fn, warm: list, timed: list) -> tuple[float, list]:
    """(images/s over `timed`, outputs of `timed`), after rendering `warm` untimed."""
    for rows in warm:
        fn(rows)
    run.sync()
    t = time.perf_counter()
    outs = [fn(rows) for rows in timed]
    run.sync()
    return sum(len(r) for r in timed) / (time.perf_counter() - t), outs


def generation(run: Run, base: Path) -> None:
    import numpy as np
    import torch

    from dermsynth.diffusion.sample import prepare_pipeline, render_chunk

    p = run.p
    proj = prepare_pipeline(base, None, _gen_cfg(run, 1, 1), run.device)
    base_sched = dict(proj.scheduler.config)
    plain = _plain_pipe(run, base)
    for b in p.batches:
        settings = (f"{p.size} px, {p.steps} steps, CFG {p.guidance:g}, euler, {run.dtype_name()}, batch {b}, "
                    f"{p.gen_timed[b] * b} images timed after {p.gen_warm * b} warm-up")
        chunks = _chunks(run, b, p.gen_warm + p.gen_timed[b])
        warm, timed = chunks[:p.gen_warm], chunks[p.gen_warm:]
        bad: list = []

        def project_chunk(rows):
            arrays, retries = render_chunk(proj, rows, base_sched, max_reseeds=0)
            bad.extend(retries)
            return arrays

        if run.cuda:
            torch.cuda.reset_peak_memory_stats()
        r_proj, outs_proj = _timed(run, project_chunk, warm, timed)
        peak = (f"; peak {_gb(torch.cuda.max_memory_allocated())} GB allocated (both pipelines loaded)"
                if run.cuda else "")
        r_plain, outs_plain = _timed(run, lambda rows: _plain_render(plain, rows, p.guidance)[0], warm, timed)
        a = np.stack([x for o in outs_proj for x in o]).astype(np.int16)
        c = np.stack([x for o in outs_plain for x in o]).astype(np.int16)
        diff = int(np.abs(a - c).max())
        note = ("project path: plan + prepare_pipeline + render_chunk (channels_last)" + peak
                + (f"; {len(bad)} renders not finite or black (random weights)" if bad else ""))
        run.rows.append(Row(f"generate_b{b}_dermsynth", settings, r_proj, "images/s", r_proj / r_plain, "ok", note))
        run.rows.append(Row(f"generate_b{b}_diffusers", settings, r_plain, "images/s", None, "ok",
                            "plain StableDiffusionPipeline loop; same seeds: max |diff| vs dermsynth "
                            f"{diff} grey levels"))

    # determinism: one chunk from its rows' seeds, twice, through the project's path
    rows = _chunks(run, p.det_batch, 1, seed=7)[0]
    first, r1 = render_chunk(proj, rows, base_sched, max_reseeds=0)
    second, r2 = render_chunk(proj, rows, base_sched, max_reseeds=0)
    same = all(x.tobytes() == y.tobytes() for x, y in zip(first, second)) and len(first) == len(second) == len(rows)
    settings = (f"{p.size} px, {p.steps} steps, CFG {p.guidance:g}, euler, {run.dtype_name()}, batch {p.det_batch}, "
                f"CPU generators, seeds {', '.join(str(s) for s in rows.seed)}")
    if not same:
        status, note = "DIFFERENT", "the same seeds gave different bytes on the same device"
    elif r1 or r2:
        status, note = "inconclusive", f"{len(r1) + len(r2)} renders not finite or black: zeros compared"
    else:
        status, note = "identical", "uint8 arrays byte-identical (the bytes a PNG of the row holds)"
    run.rows.append(Row("determinism", settings, float(len(rows)), "images compared", None, status, note))
    del proj, plain
    _release(run)


# ---------------------------------------------------------------- LoRA


def lora(run: Run, base: Path) -> None:
    import numpy as np
    import torch
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler

    from dermsynth.diffusion import lora as L
    from dermsynth.diffusion.latents import LatentCache

    p = run.p
    if run.cuda:
        torch.cuda.reset_peak_memory_stats()
    # the paper's LoRA settings (configs/paper.yaml); mixed precision said explicitly, not "auto"
    cfg = L.LoraTrainConfig(batch_size=p.lora_batch, rank=8, alpha=16, learning_rate=1e-4, lr_warmup_steps=0,
                            mixed_precision="fp16" if run.cuda else "no", checkpoint_every=10**9, flip_augment=False)
    accelerator = Accelerator(mixed_precision=L.mixed_precision(cfg.mixed_precision), cpu=not run.cuda)
    models = L._load_models(base, cfg, accelerator)
    side = p.size // models.pipe.vae_scale_factor
    rng = np.random.default_rng(0)
    n = max(8, 4 * p.lora_batch)
    inst = LatentCache(rng.standard_normal((n, 4, side, side), dtype=np.float32),
                       np.full((n, 4, side, side), 0.1, dtype=np.float32), run.root / "latents")
    total = 10**9  # never reached: no checkpoint is written inside the timed steps
    optimizer = torch.optim.AdamW(models.params, lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay)
    lr_sched = get_scheduler(cfg.lr_scheduler, optimizer=optimizer, num_warmup_steps=0, num_training_steps=total)
    models.unet, optimizer, lr_sched = accelerator.prepare(models.unet, optimizer, lr_sched)
    work = run.root / "lora-work"
    losses = L._train_steps(models, inst, None, cfg, accelerator, optimizer, lr_sched, range(0, p.lora_warm), total,
                            [], work, "malignant")
    run.sync()
    t = time.perf_counter()
    losses = L._train_steps(models, inst, None, cfg, accelerator, optimizer, lr_sched,
                            range(p.lora_warm, p.lora_warm + p.lora_steps), total, losses, work, "malignant")
    run.sync()
    dt = time.perf_counter() - t
    if not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"LoRA loss not finite: {losses[-3:]}")
    prec = "fp16 mixed precision" if run.cuda else "fp32"
    settings = (f"{p.size} px, batch {p.lora_batch}, rank 8, {prec}, no gradient checkpointing, "
                f"{p.lora_steps} steps timed after {p.lora_warm} warm-up")
    run.rows.append(Row("lora_train", settings, p.lora_steps / dt, "steps/s", None, "ok",
                        f"{p.lora_steps * p.lora_batch / dt:.2f} images/s; project step "
                        "(lora._load_models + lora._train_steps), latents from an in-memory LatentCache"))
    if run.cuda:
        mem = Row("lora_train_peak_memory", settings, _gb(torch.cuda.max_memory_allocated()), "GB", None, "ok",
                  "torch.cuda.max_memory_allocated over loading and all steps (UNet, VAE, text encoder on the GPU)")
    else:
        mem = Row("lora_train_peak_memory", settings, _gb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
                  "GB", None, "ok", "CPU: peak RSS of this whole process (no CUDA allocator to ask)")
    run.rows.append(mem)
    del models, optimizer, lr_sched, accelerator
    _release(run)


# ---------------------------------------------------------------- classifier


def _classifier_amp(run: Run) -> str:
    """bf16 autocast, as the project trains on CUDA; on the CPU too when this torch can."""
    if run.cuda:
        return "bf16"
    import torch

    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.Linear(4, 4)(torch.randn(2, 4)).float().sum().backward()
        return "bf16"
    except Exception:  # noqa: BLE001 - an old CPU or torch without bf16 autocast
        return "no"


def classifier(run: Run) -> None:
    import torch

    from dermsynth.classify.models import create_classifier
    from dermsynth.classify.loop import optimiser, train_epoch
    from dermsynth.classify.train import TrainConfig

    p = run.p
    amp = _classifier_amp(run)
    cfg = TrainConfig(model=p.vit, img_size=p.vit_size, batch_size=p.vit_batch, lr=1e-4, mixed_precision=amp,
                      threads=run.threads)
    torch.manual_seed(0)
    net = create_classifier(cfg.model, cfg.img_size, "", cfg.drop_rate).to(run.device)
    if run.cuda:
        net = net.to(memory_format=torch.channels_last)  # as train_classifier does
    steps = p.vit_warm + p.vit_steps
    step = optimiser(net, cfg, steps, run.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(p.vit_batch, 3, p.vit_size, p.vit_size, generator=g).to(run.device)
    y = torch.randint(0, 2, (p.vit_batch,), generator=g).to(run.device)
    t0 = time.perf_counter()
    losses, _ = train_epoch(step, [(x, y)] * p.vit_warm, 0, steps, "vit warm-up", 1, 0, t0)
    run.sync()
    t = time.perf_counter()
    more, _ = train_epoch(step, [(x, y)] * p.vit_steps, 1, steps, "vit timed", 1, 0, t)
    run.sync()
    dt = time.perf_counter() - t
    if not all(math.isfinite(v) for v in losses + more):
        raise RuntimeError(f"classifier loss not finite: {more[-3:]}")
    prec = "bf16 autocast" if amp == "bf16" else "fp32 (bf16 autocast failed on this CPU)"
    run.rows.append(Row("classifier_train", f"timm {p.vit} at {p.vit_size} px, batch {p.vit_batch}, {prec}, AdamW, "
                        f"{p.vit_steps} steps timed after {p.vit_warm} warm-up", p.vit_steps * p.vit_batch / dt,
                        "images/s", None, "ok", "project step (loop.optimiser + loop.train_epoch) on batches "
                        "already on the device: no decoding or augmentation"))
    del net, step
    _release(run)


# ---------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp(run: Run) -> None:
    import torch
    import torch.distributed as dist

    from dermsynth.classify.loop import distributed, optimiser, train_epoch
    from dermsynth.classify.train import TrainConfig

    backend = "nccl" if run.cuda else "gloo"
    if run.cuda:
        torch.cuda.set_device(run.device)
    port = _free_port()
    t = time.perf_counter()
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    init_s = time.perf_counter() - t
    try:
        torch.manual_seed(0)
        nn = torch.nn
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten(), nn.Linear(8, 2)).to(run.device)
        model = distributed(net, run.device)  # SyncBatchNorm + DDP on CUDA, DDP on CPU
        step = optimiser(model, TrainConfig(mixed_precision="no"), 1, run.device)
        x = torch.randn(8, 3, 16, 16).to(run.device)
        y = torch.tensor([0, 1] * 4).to(run.device)
        before = [q.detach().clone() for q in net.parameters()]
        t = time.perf_counter()
        losses, _ = train_epoch(step, [(x, y)], 0, 1, "ddp", 1, 0, t)
        run.sync()
        step_s = time.perf_counter() - t
        box = torch.ones(1, device=run.device)
        dist.all_reduce(box)
        moved = any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
        ok = math.isfinite(losses[0]) and moved and float(box.item()) == 1.0
    finally:
        dist.destroy_process_group()
    run.rows.append(Row("ddp_smoke", f"{backend}, world_size 1, 127.0.0.1:{port}, conv+BatchNorm net, 1 step",
                        step_s * 1000, "ms/step", None, "ok" if ok else "error",
                        f"init {init_s:.2f} s; project wrapper train.distributed "
                        f"({'SyncBatchNorm + ' if run.cuda else ''}DDP); "
                        + ("loss finite, weights updated, all_reduce = 1" if ok else
                           f"loss {losses[0]}, weights updated {moved}, all_reduce {box.item()}")))


# ---------------------------------------------------------------- table

PHASES = [
    ("generation", ["generate_b1_dermsynth", "generate_b1_diffusers", "generate_b8_dermsynth", "generate_b8_diffusers",
                    "determinism"]),
    ("lora", ["lora_train", "lora_train_peak_memory"]),
    ("classifier", ["classifier_train"]),
    ("ddp", ["ddp_smoke"]),
]
ROW_NAMES = [n for _, names in PHASES for n in names]


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def table(rows: list[Row]) -> str:
    cols = [("name", lambda r: r.name), ("value", lambda r: _fmt(r.value)), ("unit", lambda r: r.unit),
            ("ratio", lambda r: "-" if r.ratio is None else f"{r.ratio:.2f}x"), ("status", lambda r: r.status),
            ("settings", lambda r: r.settings)]
    cells = [[f(r) for _, f in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    out = [line([h for h, _ in cols]), line(["-" * w for w in widths])] + [line(c) for c in cells]
    out += [""] + [f"  {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even where CUDA is present")
    ap.add_argument("--tiny", action="store_true",
                    help="tiny UNet/VAE/text encoder at 64 px, 2 steps, ViT-Tiny at 32 px")
    ap.add_argument("--json", default="", help="also write the table here as JSON")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads of a CPU run (default: 1 with --tiny, where OpenMP threads on shared cores "
                         "mostly wait on each other, else 2 as in params.yaml)")
    ap.add_argument("--budget-s", type=float, default=480, help="phases not started by then are skipped")
    ap.add_argument("--keep", default="", help="keep the base model and work files in this folder")
    a = ap.parse_args(argv)
    a.threads = a.threads or (1 if a.tiny else 2)
    if a.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # every project path (dtype auto, Accelerator, devices) sees a CPU
    from dermsynth.config import configure_environment

    configure_environment()
    t_start = time.perf_counter()
    import torch
    from importlib.metadata import version

    diffusers_version = version("diffusers")  # the module itself is imported only where a row needs it

    p = TINY if a.tiny else FULL
    cuda = torch.cuda.is_available() and not a.cpu
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if not cuda:
        torch.set_num_threads(a.threads)
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="gpu-check-"))
    root.mkdir(parents=True, exist_ok=True)
    run = Run(device, torch.float16 if cuda else torch.float32, p, root, a.threads)
    n = torch.get_num_threads()
    device_name = torch.cuda.get_device_name(0) if cuda else f"CPU ({n} thread{'s' * (n > 1)})"
    code = 0
    if not cuda and not a.cpu:
        why = "no CUDA device (torch.cuda.is_available() is False); --cpu --tiny runs the same code on the CPU"
        run.rows = [Row(n, "", status="skipped", note=why) for n in ROW_NAMES]
        code = 2
    else:
        try:
            t = time.perf_counter()
            base = build_base(run)
            run.phase_s["build_base"] = round(time.perf_counter() - t, 1)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            base, why = None, f"building the base model failed: {type(e).__name__}: {e}"
        for phase, names in PHASES:
            n_before = len(run.rows)
            if base is None and phase in ("generation", "lora"):
                run.rows += [Row(n, "", status="error", note=why) for n in names]
                continue
            if time.perf_counter() - t_start > a.budget_s:
                run.rows += [Row(n, "", note=f"time budget of {a.budget_s:.0f} s spent before this phase")
                             for n in names]
                continue
            t = time.perf_counter()
            try:
                {"generation": lambda: generation(run, base), "lora": lambda: lora(run, base),
                 "classifier": lambda: classifier(run), "ddp": lambda: ddp(run)}[phase]()
            except Exception as e:  # noqa: BLE001 - one failed phase must not hide the others' numbers
                traceback.print_exc()
                done = {r.name for r in run.rows[n_before:]}
                run.rows += [Row(n, "", status="error", note=f"{type(e).__name__}: {str(e)[:300]}")
                             for n in names if n not in done]
                _release(run)
            run.phase_s[phase] = round(time.perf_counter() - t, 1)
        if any(r.status == "error" for r in run.rows):
            code = 3
        if any(r.status == "DIFFERENT" for r in run.rows):
            code = 1
    wall = time.perf_counter() - t_start
    mode = ("cuda" if cuda else "cpu" if a.cpu else "no-cuda") + ("-tiny" if a.tiny else "")
    arch = "tiny SD architecture" if a.tiny else "SD1.5 architecture (random weights)"
    print(f"\nGPU check ({mode}): {arch} on {device_name}; torch {torch.__version__}, diffusers {diffusers_version}"
          f"; {wall:.0f} s wall, phases {run.phase_s}\n")
    print(table(run.rows))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({
            "mode": mode, "device": device_name, "torch": torch.__version__, "diffusers": diffusers_version,
            "cuda": torch.version.cuda if cuda else None, "wall_s": round(wall, 1), "phase_s": run.phase_s,
            "exit_code": code, "profile": asdict(p), "rows": [asdict(r) for r in run.rows]}, indent=2) + "\n")
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
