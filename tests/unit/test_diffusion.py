"""Tiny-model tests of the diffusion code: base model, DreamBooth-LoRA, sampling, export."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline
from PIL import Image
from safetensors import safe_open

from dermsynth.contracts import METADATA_COLUMNS
from dermsynth.diffusion.base import BaseModelError, load_pipeline
from dermsynth.diffusion.data import batch_indices, load_images
from dermsynth.diffusion.lora import LoraTrainConfig, train_lora
from dermsynth.diffusion.lora_files import LORA_WEIGHTS
from dermsynth.diffusion.pretrain import PretrainConfig, pretrain_unet, pretrain_vae
from dermsynth.diffusion.sample import GenerateConfig, generate, make_scheduler, plan, regenerate
from tests.single_file import save_single_file
from dermsynth.diffusion.tiny import TinyConfig, WORDS, build_tiny_pipeline, build_tokenizer

LORA = LoraTrainConfig(max_steps=6, batch_size=4, learning_rate=1e-3, checkpoint_every=2, rank=4, alpha=8,
                       validation_images=2)


def test_tokenizer_makes_prompt_words_single_tokens():
    tok = build_tokenizer()
    ids = tok("a dermoscopic image of sks malignant lesion").input_ids
    assert len(ids) == 2 + 7 and tok.unk_token_id not in ids[1:-1]
    assert len(tok("Any other text, 123!").input_ids) > 2  # byte-level: never unknown
    assert len(set(WORDS)) < len(tok) < 1000


def test_tokenizer_missing_files_fail_loudly(tiny_base, tmp_path):
    broken = tmp_path / "base"
    shutil.copytree(tiny_base, broken)
    for f in ("vocab.json", "merges.txt", "tokenizer.json"):
        (broken / "tokenizer" / f).unlink(missing_ok=True)
    with pytest.raises(BaseModelError, match="tokenizer"):
        load_pipeline(broken)


def test_directory_and_single_file_load_the_same_weights(tiny_base, tmp_path):
    pipe = load_pipeline(tiny_base)
    for suffix in (".safetensors", ".ckpt"):
        f = save_single_file(pipe, tmp_path / f"tiny{suffix}")
        other = load_pipeline(f, config=tiny_base)
        for name in ("unet", "vae", "text_encoder"):
            a, b = getattr(pipe, name).state_dict(), getattr(other, name).state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (suffix, name)
    with pytest.raises(BaseModelError, match="base_model.config"):
        load_pipeline(tmp_path / "tiny.safetensors")
    with pytest.raises(BaseModelError, match="not found"):
        load_pipeline(tmp_path / "nope")


def test_pretraining_lowers_the_losses(instance_images):
    root, paths = instance_images
    pipe = build_tiny_pipeline(TinyConfig(image_size=32))
    x = load_images(paths, root)
    cfg = PretrainConfig(vae_steps=40, unet_steps=40, batch_size=8, vae_crop=0)
    vae_loss = pretrain_vae(pipe, x, cfg)
    unet_loss = pretrain_unet(pipe, x, cfg)
    assert np.mean(vae_loss[-5:]) < 0.7 * np.mean(vae_loss[:5])
    assert np.mean(unet_loss[-10:]) < np.mean(unet_loss[:10])
    assert pipe.vae.config.scaling_factor != 0.18215  # fitted to this VAE's latents


def test_batches_are_a_pure_function_of_step():
    a = [batch_indices(50, 8, s, seed=3) for s in range(20)]
    b = [batch_indices(50, 8, s, seed=3) for s in range(20)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    epoch0 = torch.cat(a[:6])
    assert len(set(epoch0.tolist())) == 48  # no repeats inside an epoch


def test_lora_training_writes_a_diffusers_lora(tiny_base, instance_images, tmp_path):
    root, paths = instance_images
    res = train_lora(tiny_base, paths, "malignant", tmp_path / "out", tmp_path / "work", LORA, repo_root=root)
    assert res.steps == 6 and len(res.losses) == 6 and all(np.isfinite(res.losses))
    f = tmp_path / "out" / LORA_WEIGHTS
    with safe_open(f, "pt") as sf:
        meta = sf.metadata()
        keys = list(sf.keys())
    assert all(k.startswith("unet.") and ".lora" in k for k in keys)
    unet_meta = json.loads(meta["lora_adapter_metadata"])
    assert unet_meta["unet.r"] == 4 and unet_meta["unet.lora_alpha"] == 8
    assert (tmp_path / "out" / "checkpoints" / "checkpoint-6" / "state.json").is_file()
    # plain diffusers loads it, and it changes what the model draws
    pipe = StableDiffusionPipeline.from_pretrained(tiny_base, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(num_inference_steps=3, output_type="np", generator=torch.Generator().manual_seed(0))
    before = pipe("a dermoscopic image of sks malignant lesion", **kw).images
    pipe.load_lora_weights(str(tmp_path / "out"))
    kw["generator"] = torch.Generator().manual_seed(0)
    after = pipe("a dermoscopic image of sks malignant lesion", **kw).images
    assert np.abs(before - after).max() > 1e-4


def test_lora_with_text_encoder_and_prior_preservation(tiny_base, instance_images, tmp_path):
    root, paths = instance_images
    cfg = LoraTrainConfig(**{**LORA.__dict__, "train_text_encoder": True, "prior_preservation": True,
                             "num_class_images": 4, "max_steps": 2})
    train_lora(tiny_base, paths, "benign", tmp_path / "out", tmp_path / "work", cfg, repo_root=root)
    with safe_open(tmp_path / "out" / LORA_WEIGHTS, "pt") as sf:
        prefixes = {k.split(".")[0] for k in sf.keys()}
    assert prefixes == {"unet", "text_encoder"}
    assert len(list((tmp_path / "work").glob("*/class_images/*.png"))) == 4


def test_lora_resume_in_process_equals_uninterrupted(tiny_base, instance_images, tmp_path):
    root, paths = instance_images
    full = train_lora(tiny_base, paths, "malignant", tmp_path / "a", tmp_path / "wa", LORA, repo_root=root)
    part = train_lora(tiny_base, paths, "malignant", tmp_path / "b", tmp_path / "wb", LORA, repo_root=root, stop_after=3)
    assert part.steps == 3 and not (tmp_path / "b" / LORA_WEIGHTS).exists()
    rest = train_lora(tiny_base, paths, "malignant", tmp_path / "b", tmp_path / "wb", LORA, repo_root=root)
    assert rest.resumed_from == 2  # the newest complete checkpoint before the stop
    assert rest.losses == full.losses
    with safe_open(tmp_path / "a" / LORA_WEIGHTS, "pt") as fa, safe_open(tmp_path / "b" / LORA_WEIGHTS, "pt") as fb:
        assert all(torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())
    # every file of the DVC output, versioned checkpoint included, is byte-identical: a fresh clone
    # reproduces dvc.lock (also when one of the runs was resumed)
    train_lora(tiny_base, paths, "malignant", tmp_path / "c", tmp_path / "wc", LORA, repo_root=root)
    for other in ("b", "c"):
        files = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in sorted((tmp_path / "a").rglob("*")) if p.is_file()}
        again = {p.relative_to(tmp_path / other): p.read_bytes() for p in sorted((tmp_path / other).rglob("*")) if p.is_file()}
        assert files.keys() == again.keys()
        assert [str(f) for f in files if files[f] != again[f]] == [], other


@pytest.mark.parametrize("name, cls", [("euler", EulerDiscreteScheduler), ("euler_a", EulerAncestralDiscreteScheduler),
                                       ("plms", PNDMScheduler)])
def test_scheduler_choice(tiny_base, name, cls):
    base = dict(load_pipeline(tiny_base).scheduler.config)
    s = make_scheduler(name, base)
    assert type(s) is cls and s.config.beta_schedule == base["beta_schedule"]
    if name == "plms":
        assert s.config.skip_prk_steps


def test_unknown_scheduler():
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("ddim2", {})


def test_plan_follows_the_metadata_contract():
    cfg = GenerateConfig(n_per_class=30, batch_size=4, seed=5)
    df = plan(cfg, "models/base", {"benign": "models/lora/benign", "malignant": "models/lora/malignant"}, "data/synthetic")
    assert list(df.columns[: len(METADATA_COLUMNS)]) == METADATA_COLUMNS
    assert (df.groupby("label").size() == 30).all() and df.seed.is_unique and df.image_id.is_unique
    assert df.steps.between(20, 26).all() and df.steps.nunique() > 3 and (df.cfg == 7.0).all()
    assert df.groupby("label").sampler.value_counts().eq(10).all()
    assert df.groupby("chunk").size().max() <= 4
    assert df.groupby("chunk")[["label", "sampler", "steps"]].nunique().eq(1).all().all()
    again = plan(cfg, "models/base", {"benign": "models/lora/benign", "malignant": "models/lora/malignant"}, "data/synthetic")
    assert df.equals(again)


def _gen(root, out, batch_size=4, stop=None, n=6, channels_last=True):
    cfg = GenerateConfig(n_per_class=n, batch_size=batch_size, steps_min=3, steps_max=4, threads=1, seed=1,
                         channels_last=channels_last)
    loras = {c: f"models/lora/{c}" for c in cfg.classes}
    return generate(cfg, "models/base", loras, root / out, root / f".work-{out}", repo_root=root, stop_after_chunks=stop)


def _pixels(root, out):
    meta = pd.read_csv(root / out / "metadata.csv")
    return meta, {r.image_id: np.asarray(Image.open(root / r.path)) for r in meta.itertuples()}


def test_generation_is_deterministic_and_resumable(gen_repo):
    _gen(gen_repo, "syn_a")
    _gen(gen_repo, "syn_b")
    partial = _gen(gen_repo, "syn_c", stop=2)
    assert partial["stopped_early"] and not (gen_repo / "syn_c" / "metadata.csv").exists()
    resumed = _gen(gen_repo, "syn_c")
    assert resumed["timings"]["generated_now"] < 12
    meta, a = _pixels(gen_repo, "syn_a")
    _, b = _pixels(gen_repo, "syn_b")
    _, c = _pixels(gen_repo, "syn_c")
    assert len(meta) == 12 and all(np.array_equal(a[k], b[k]) and np.array_equal(a[k], c[k]) for k in a)
    assert list(meta.columns) == METADATA_COLUMNS
    assert meta.path.str.startswith("syn_a/images/").all()


def test_a_row_regenerates_its_image_with_plain_diffusers(gen_repo):
    # plain diffusers keeps the UNet contiguous; channels_last convolutions round differently in the last
    # float bit, which once in a few thousand values moves a pixel by one grey level
    _gen(gen_repo, "syn_one", batch_size=1, n=3, channels_last=False)
    meta, px = _pixels(gen_repo, "syn_one")
    for row in meta.head(3).to_dict("records"):  # one per sampler
        assert np.array_equal(regenerate(row, gen_repo, threads=1), px[row["image_id"]]), row["sampler"]
    _gen(gen_repo, "syn_channels_last", batch_size=1, n=3)
    meta_c, px_c = _pixels(gen_repo, "syn_channels_last")
    row = meta_c.iloc[0].to_dict()
    assert np.abs(regenerate(row, gen_repo, threads=1).astype(int) - px_c[row["image_id"]]).max() <= 1
    # batched chunks differ from batch-1 only by float rounding in batched kernels
    _gen(gen_repo, "syn_batched", batch_size=4, n=3)
    meta_b, px_b = _pixels(gen_repo, "syn_batched")
    row = meta_b.iloc[0].to_dict()
    assert np.abs(regenerate(row, gen_repo, threads=1).astype(int) - px_b[row["image_id"]]).max() <= 3


def test_a1111_export_round_trip(gen_repo, tmp_path):
    from dermsynth.cli import main as cli
    from dermsynth.diffusion.export import read_lora

    lora = gen_repo / "models/lora/malignant"
    out = tmp_path / "malignant_a1111.safetensors"
    cli(["export-lora", "--lora", str(lora), "--out", str(out)])
    with safe_open(out, "pt") as sf:
        keys, meta = list(sf.keys()), sf.metadata()
        alphas = {float(sf.get_tensor(k)) for k in keys if k.endswith(".alpha")}
    assert all(k.startswith("lora_unet_") for k in keys) and any(k.endswith(".lora_down.weight") for k in keys)
    assert alphas == {8.0} and meta["ss_network_dim"] == "4"  # alpha kept, not reset to the rank
    # loading the exported file back gives the same model as the original LoRA
    pipe = StableDiffusionPipeline.from_pretrained(gen_repo / "models/base", safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(prompt="a dermoscopic image of sks malignant lesion", num_inference_steps=3, output_type="np")
    pipe.load_lora_weights(str(lora))
    a = pipe(generator=torch.Generator().manual_seed(0), **kw).images
    pipe.unload_lora_weights()
    base = pipe(generator=torch.Generator().manual_seed(0), **kw).images
    pipe.load_lora_weights(str(out))
    b = pipe(generator=torch.Generator().manual_seed(0), **kw).images
    assert np.abs(a - base).max() > 1e-4
    assert np.abs(a - b).max() < 1e-4
    assert read_lora(lora)[1]["unet.lora_alpha"] == 8


def _nan_decoder(monkeypatch, is_bad):
    """Generation through a VAE decoder that emits NaN on the calls `is_bad(call_number)` picks."""
    from dermsynth.diffusion import sample

    real_prepare, calls = sample.prepare_pipeline, {"n": 0}

    def prepare(*args, **kwargs):
        pipe = real_prepare(*args, **kwargs)
        decode = pipe.vae.decode

        def nan_decode(z, *a, **kw):
            out = decode(z, *a, **kw)
            calls["n"] += 1
            if is_bad(calls["n"]):
                (out[0] if isinstance(out, tuple) else out.sample).fill_(float("nan"))
            return out

        pipe.vae.decode = nan_decode
        return pipe

    monkeypatch.setattr(sample, "prepare_pipeline", prepare)
    return calls


def test_nan_renders_are_caught_reseeded_and_recorded(gen_repo, monkeypatch):
    from dermsynth.diffusion.sample import reseed

    _nan_decoder(monkeypatch, lambda call: call == 1)  # the first chunk's batch decodes to NaN
    # contiguous UNet as plain diffusers keeps it: channels_last rounds differently on some CPUs (AVX-512)
    summary = _gen(gen_repo, "syn_nan", batch_size=2, n=3, channels_last=False)
    meta, px = _pixels(gen_repo, "syn_nan")
    retries = pd.read_csv(gen_repo / "syn_nan" / "reseeds.csv")
    assert summary["reseeded"] == len(retries) >= 1 and summary["unrecovered"] == 0
    assert retries.reason.eq("not finite").all() and retries.recovered.all() and retries.attempts.eq(1).all()
    for r in retries.itertuples():
        row = meta.set_index("image_id").loc[r.image_id]
        assert row.seed == r.seed == reseed(r.first_seed, 1)  # the metadata holds the seed that made the image
        assert px[r.image_id].std() > 1  # a real image, not the NaN's zeros
        monkeypatch.undo()  # plain diffusers gives the retried image back from its row
        assert np.array_equal(regenerate({**row.to_dict(), "image_id": r.image_id}, gen_repo, threads=1), px[r.image_id])
    assert set(meta.device) == {"cpu"} and set(meta.dtype) == {"float32"}


def test_a_render_that_stays_nan_fails_the_synthetic_gate(gen_repo, monkeypatch):
    from dermsynth.quality.gate import QualityGateError, run_gate
    from dermsynth.quality.suites import synthetic_images, synthetic_suite

    _nan_decoder(monkeypatch, lambda call: True)
    summary = generate(GenerateConfig(n_per_class=1, batch_size=1, steps_min=3, steps_max=3, threads=1, seed=1,
                                      max_reseeds=2), "models/base", {c: f"models/lora/{c}" for c in ("benign", "malignant")},
                       gen_repo / "syn_allnan", gen_repo / ".work-allnan", repo_root=gen_repo)
    assert summary["unrecovered"] == 2
    retries = pd.read_csv(gen_repo / "syn_allnan" / "reseeds.csv")
    assert retries.attempts.eq(2).all() and not retries.recovered.any()
    meta = pd.read_csv(gen_repo / "syn_allnan" / "metadata.csv")
    with pytest.raises(QualityGateError, match="no NaN or black render left"):
        run_gate("synthetic", synthetic_suite(meta, synthetic_images(meta, gen_repo), 1, ["benign", "malignant"], 32,
                                              reseeds=retries),
                 gen_repo / "q_allnan")


def test_latent_cache_is_reused_and_invalidated_by_base_model_or_data(tiny_base, instance_images, tmp_path):
    root, paths = instance_images
    work = tmp_path / "work"
    train_lora(tiny_base, paths, "malignant", tmp_path / "a", work, LORA, repo_root=root)
    caches = sorted((work / "latents").iterdir())
    assert len(caches) == 1 and (caches[0] / "complete.json").is_file()
    stamp = (caches[0] / "mean.npy").stat().st_mtime_ns
    # another LoRA configuration on the same images and base model re-uses the encoded latents
    other = LoraTrainConfig(**{**LORA.__dict__, "learning_rate": 5e-4, "max_steps": 2})
    train_lora(tiny_base, paths, "malignant", tmp_path / "b", work, other, repo_root=root)
    assert sorted((work / "latents").iterdir()) == caches and (caches[0] / "mean.npy").stat().st_mtime_ns == stamp
    # other data: a new cache
    train_lora(tiny_base, paths[:-1], "malignant", tmp_path / "c", work, other, repo_root=root)
    assert len(list((work / "latents").iterdir())) == 2
    # another base model: a new cache
    base2 = tmp_path / "base2"
    build_tiny_pipeline(TinyConfig(image_size=32, seed=2)).save_pretrained(base2)
    train_lora(base2, paths, "malignant", tmp_path / "d", work, other, repo_root=root)
    assert len(list((work / "latents").iterdir())) == 3
    # the cache holds every image in all four orientations, memory-mapped
    from dermsynth.diffusion.latents import open_cache

    cache = open_cache(caches[0])
    assert len(cache) == 4 * len(paths) and isinstance(cache.mean, np.memmap)


def test_prior_preservation_with_a_relative_work_folder(tiny_base, instance_images, tmp_path, monkeypatch):
    """The stage passes `.work/lora`: class images must be found relative to the working directory."""
    root, paths = instance_images
    monkeypatch.chdir(tmp_path)
    cfg = LoraTrainConfig(**{**LORA.__dict__, "prior_preservation": True, "num_class_images": 3, "max_steps": 2})
    res = train_lora(tiny_base, paths, "benign", "out", ".work/lora", cfg, repo_root=root)
    assert res.steps == 2 and (tmp_path / "out" / LORA_WEIGHTS).is_file()
    assert len(list((tmp_path / ".work/lora").glob("*/class_latents/complete.json"))) == 1


def test_a_row_made_on_cuda_says_where_its_bytes_come_back(gen_repo):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    row = {"image_id": "syn_x", "device": "cuda", "dtype": "float16"}
    with pytest.raises(ValueError, match="syn_x was made on cuda in float16"):
        regenerate(row, gen_repo)


def test_pretraining_captions_each_image_from_its_class_and_traits(prepared_session):
    from dermsynth.traits import captions

    root, m = prepared_session
    rows = m[m.split == "train"].head(6).assign(site=["torso", "", "head_neck", "torso", "unknown", "palms_soles"],
                                                skin_tone=["dark", "light", "", "tan", "brown", "very_light"])
    got = captions("a dermoscopic image of a {label} skin lesion, {site}, {skin_tone} skin", rows)
    r0 = rows.iloc[0]
    assert got[0] == f"a dermoscopic image of a {r0.label} skin lesion, torso, dark skin"
    assert got[1].endswith(f"{rows.iloc[1].label} skin lesion, light skin")  # an unknown trait's clause is left out
    assert got[4].endswith("skin lesion, brown skin") and "very light skin" in got[5]
    assert captions("a dermoscopic image of a skin lesion", rows) == ["a dermoscopic image of a skin lesion"] * 6


def test_captioned_pretraining_conditions_each_image_on_its_own_prompt(instance_images):
    from dermsynth.diffusion.pretrain import GENERIC_PROMPT

    root, paths = instance_images
    x = load_images(paths[:8], root)
    cfg = PretrainConfig(vae_steps=0, unet_steps=6, batch_size=4)

    def unet_after(prompts):
        pipe = build_tiny_pipeline(TinyConfig(image_size=32, seed=5))
        pretrain_unet(pipe, x, cfg, prompts)
        return pipe.unet.state_dict()

    generic, none = unet_after([GENERIC_PROMPT] * 8), unet_after(None)
    assert all(torch.equal(generic[k], none[k]) for k in generic)  # one prompt for all = the generic path
    own = unet_after([f"a dermoscopic image of a {'benign' if i % 2 else 'malignant'} skin lesion" for i in range(8)])
    assert any(not torch.equal(own[k], none[k]) for k in own)  # the captions reach the cross-attention
    with pytest.raises(ValueError, match="3 prompts for 8 images"):
        pretrain_unet(build_tiny_pipeline(TinyConfig(image_size=32)), x, cfg, ["a"] * 3)


def test_tiny_architecture_from_params():
    from dermsynth.params import TinyArchitecture

    cfg = TinyConfig(vae_channels=(16, 32, 64), image_size=32)
    pipe = build_tiny_pipeline(cfg)
    assert pipe.vae_scale_factor == 4 and pipe.unet.config.sample_size == 8  # 3 levels: 4x, 8x8 latents at 32 px
    assert TinyConfig().vae_channels == tuple(TinyArchitecture().vae_channels)  # the schema's default
    with pytest.raises(ValueError, match="unet_channels: \\[40\\] not a multiple of 16"):
        TinyArchitecture(unet_channels=(32, 40))
