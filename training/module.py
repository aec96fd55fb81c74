"""Two-stage training of the Bokeh-Loss GAN (Lee et al., AIM 2022, §3.5 and §4.1) as one
LightningModule. It only wires networks, losses, optimisers and logging together: the networks
(`training.model`, `training.discriminator`) and the losses (`training.losses`) are plain modules.

* Stage 1, "pretraining" (eq. 4):
  0.5·L1 + 0.05·L_SSIM + 0.005·L_edgediff + 0.1·L_backblur + 0.005·L_foreedge.
* Stage 2, "refinement" (eq. 5): 0.5·L1 + 0.1·L_VGG + 0.05·L_SSIM + 1·L_adv, where L_adv comes
  from two PatchGAN critics of depth 3 and 5 trained jointly with WGAN-GP (§3.3, λ = 1).

Which terms run is decided by the weights alone (a weight of 0 switches a term off), so one class
serves both stages and every term's weight lives in the stage's YAML. Stage 2 starts from the
stage-1 generator through ``init_generator`` (weights only: the stage-1 optimiser is not resumed).
Every fit that checkpoints also keeps ``model.safetensors`` beside ``best.ckpt``
(``training.callbacks.GeneratorSafetensors``): the generator without a pickle.

Speed levers for one GPU (``docs/gpu_training.md``, measured by ``python -m training.benchmark``):
``channels_last``, ``compile`` and ``fused_adam``. None of them changes what a step computes, only
how fast; bf16 autocast is the trainer's ``precision: bf16-mixed``.

Under DDP (``--trainer.strategy ddp``; ``tests/test_ddp.py``) a step equals one process's on the
same global batch: the logged training losses are synced over ranks, the validation metrics are
means over the whole split with each image once, and ranks > 0 draw their own random crops.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from common.io import atomic_save_image
from common.metrics import psnr, ssim
from training.callbacks import GeneratorSafetensors, GracefulStop
from training.checkpoint import load_generator
from training.discriminator import MultiScaleDiscriminator
from training.losses import (
    BackgroundBlurLoss,
    EdgeDifferenceLoss,
    ForegroundEdgeLoss,
    SSIMLoss,
    VGGPerceptualLoss,
    critic_loss,
    focus_mask,
    generator_adversarial_loss,
    gradient_penalty,
)
from training.model import NAFNet
from training.resume import check_resumed_hparams

__all__ = ["BokehGAN"]


class BokehGAN(L.LightningModule):
    def __init__(
        self,
        # Generator (§3.1): NAFNet width 8, 36 NAFBlocks. These restate NAFNet's own arguments on
        # purpose: the Lightning CLI reads the YAML keys (model.width, ...) off this signature, and
        # checkpoints keep them as hyperparameters (training.checkpoint.ARCH_KEYS).
        width: int = 8,
        enc_blocks: tuple[int, ...] = (2, 2, 2, 20),
        middle_blocks: int = 2,
        dec_blocks: tuple[int, ...] = (2, 2, 2, 2),
        # Lens conditioning (training/model.py): the generator also reads (d_f, K); needs data.lens.
        lens_input: bool = False,
        # Blurred copies of the photo the generator mixes per pixel (training/blur_prior.py).
        blur_prior: bool = False,
        # Loss weights (eq. 4 for stage 1, eq. 5 for stage 2). 0 switches a term off.
        l1_weight: float = 0.5,
        ssim_weight: float = 0.05,
        edge_diff_weight: float = 0.005,
        back_blur_weight: float = 0.1,
        fore_edge_weight: float = 0.005,
        vgg_weight: float = 0.0,
        adv_weight: float = 0.0,
        # Critics (§3.3): PatchGANs of depth 3 and 5, WGAN-GP with λ = 1.
        disc_depths: tuple[int, ...] = (3, 5),
        disc_base_channels: int = 64,
        gp_weight: float = 1.0,
        n_critic: int = 1,
        # Optimisers (§4.1): Adam, lr 1e-4, betas (0, 0.9), for generator and critics.
        lr: float = 1e-4,
        disc_lr: float = 1e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        # Cosine decay of both learning rates to 1 % over this many batches; None keeps them
        # constant (the paper gives no schedule). Short CPU runs need it: a constant 1e-3 ends noisy.
        lr_decay_steps: int | None = None,
        # Start from these generator weights (stage 2 ← stage 1): a .ckpt, generator .pt or
        # model.safetensors (training.checkpoint.load_generator); weights only, no optimiser state.
        init_generator: str | None = None,
        # torchvision's vgg19-dcbb9e9d.pth; only needed when vgg_weight > 0.
        vgg_weights: str | None = None,
        num_sample_images: int = 4,
        # Speed levers (docs/gpu_training.md); none changes what a step computes.
        channels_last: bool = False,
        compile: bool = False,  # the CLI flag reads --model.compile
        fused_adam: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.generator = NAFNet(
            width, tuple(enc_blocks), middle_blocks, tuple(dec_blocks), lens_input=lens_input, blur_prior=blur_prior
        )
        if init_generator:
            src = load_generator(init_generator)
            if src.arch.get("width", width) != width:
                raise ValueError(f"init_generator {init_generator} has width {src.arch['width']}, config says {width}")
            if src.generator.lens_input != lens_input:
                raise ValueError(
                    f"init_generator {init_generator} has lens_input={src.generator.lens_input}, "
                    f"config says {lens_input}"
                )
            # A generator without the blur prior may start one with it: the prior's mixing conv is
            # zero-initialised, so the new generator starts from the old one's output.
            missing, unexpected = self.generator.load_state_dict(src.generator.state_dict(), strict=False)
            if unexpected or any(not k.startswith("mix.") for k in missing):
                raise ValueError(
                    f"init_generator {init_generator} does not match this generator: {missing + unexpected}"
                )

        self.l1 = nn.L1Loss()
        self.ssim = SSIMLoss()
        self.fore_edge = ForegroundEdgeLoss()
        self.edge_diff = EdgeDifferenceLoss()
        self.back_blur = BackgroundBlurLoss()
        self.vgg: nn.Module | None = None
        if vgg_weight > 0:
            self.vgg = VGGPerceptualLoss(vgg_weights)  # raises, naming vgg19-dcbb9e9d.pth, if absent

        self.discriminator: nn.Module | None = None
        if adv_weight > 0:
            self.discriminator = MultiScaleDiscriminator(tuple(disc_depths), base_channels=disc_base_channels)
            # Two optimisers stepping alternately: Lightning's manual optimisation (its GAN recipe).
            self.automatic_optimization = False
        # The resolved CLI config, set by training.__main__ and stored in every checkpoint.
        self.training_config: dict[str, Any] = {}
        # Compiled critic call for scoring (see configure_model); a plain function attribute, not
        # a submodule, so the checkpoint keys stay "discriminator.*".
        self._scoring_critic: Callable[..., list[torch.Tensor]] | None = None
        self._levers_applied = False

    # ------------------------------------------------------------------ speed levers
    def configure_model(self) -> None:
        """Apply ``channels_last`` and ``compile`` (Lightning calls this hook once per ``fit``)."""
        if self._levers_applied:  # the hook runs again for validate/test in the same process
            return
        self._levers_applied = True
        hp = self.hparams
        nets = [n for n in (self.generator, self.discriminator, self.vgg) if n is not None]
        if hp.channels_last:
            # NHWC is the layout of cuDNN's tensor-core convolutions: without it every conv
            # transposes its input and output. Tensor.to(device) keeps the layout.
            for net in nets:
                net.to(memory_format=torch.channels_last)
        if hp.compile:
            # In place (nn.Module.compile): parameter names, hence checkpoints, do not change.
            # Fusing the LayerNorm / SimpleGate / channel-attention element-wise ops is most of
            # the gain: a width-8 NAFNet at 1024x1024 is bound by memory traffic, not FLOPs.
            self.generator.compile()
            if self.discriminator is not None:
                # Only the scoring calls: the gradient penalty differentiates the critic twice, and
                # compiled graphs have no double backward, so gradient_penalty gets the eager critic.
                self._scoring_critic = torch.compile(self.discriminator.forward)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.hparams.channels_last and isinstance(batch, dict):
            # On the device already: the re-layout is a GPU copy, not a host one.
            batch = {
                k: v.contiguous(memory_format=torch.channels_last)
                if isinstance(v, torch.Tensor) and v.dim() == 4
                else v
                for k, v in batch.items()
            }
        return batch

    # ------------------------------------------------------------------ inference
    def forward(self, image: torch.Tensor, depth: torch.Tensor, lens: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(image, depth, lens)

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The generator on a batch; the lens goes in only when the generator takes one."""
        if self.generator.lens_input and "lens" not in batch:
            raise ValueError(
                "model.lens_input is true but the batch has no 'lens': set data.lens: true "
                "(training/configs/lens.yaml does both)"
            )
        return self.generator(batch["image"], batch["depth"], batch.get("lens") if self.generator.lens_input else None)

    # ------------------------------------------------------------------ losses
    def generator_losses(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every enabled generator term, unweighted, under its paper name."""
        hp = self.hparams
        image, target = batch["image"], batch["target"]
        # The greyscale saliency mask M of §3.4 (1 = in focus): the depth map itself (1 = near) in
        # the paper's mode, the focal plane of the given lens in lens mode (losses.focus_mask).
        if self.generator.lens_input:
            depth = focus_mask(batch["depth"], batch["lens"])
        else:
            depth = batch["depth"]
        terms: dict[str, torch.Tensor] = {}
        if hp.l1_weight:
            terms["l1"] = self.l1(fake, target)
        if hp.ssim_weight:
            terms["ssim"] = self.ssim(fake, target)
        if hp.fore_edge_weight:
            terms["fore_edge"] = self.fore_edge(fake, depth)
        if hp.edge_diff_weight:
            # Eq. 2 compares the output's foreground edges with those of the sharp input photo:
            # the in-focus subject of a bokeh image should keep the photo's edge strength.
            terms["edge_diff"] = self.edge_diff(fake, image, depth)
        if hp.back_blur_weight:
            terms["back_blur"] = self.back_blur(fake, depth)
        if self.vgg is not None:
            terms["vgg"] = self.vgg(fake, target)
        return terms

    def _weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        hp = self.hparams
        weights = {
            "l1": hp.l1_weight,
            "ssim": hp.ssim_weight,
            "fore_edge": hp.fore_edge_weight,
            "edge_diff": hp.edge_diff_weight,
            "back_blur": hp.back_blur_weight,
            "vgg": hp.vgg_weight,
            "g_adv": hp.adv_weight,
        }
        return sum(weights[k] * v for k, v in terms.items())

    def _critic(self, photo: torch.Tensor, candidate: torch.Tensor) -> list[torch.Tensor]:
        # Conditional critics (pix2pix): they judge the bokeh image together with its input photo.
        critic = self._scoring_critic or self.discriminator
        return critic(candidate, photo)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        if self.discriminator is None:
            fake = self.generate(batch)
            terms = self.generator_losses(batch, fake)
            loss = self._weighted(terms)
            self._log_train(terms, loss, batch["image"].shape[0])
            return loss
        self._adversarial_step(batch)
        return None

    def _adversarial_step(self, batch: dict[str, torch.Tensor]) -> None:
        hp = self.hparams
        opt_g, opt_d = self.optimizers()
        image, target = batch["image"], batch["target"]
        n = image.shape[0]
        fake = self.generate(batch)

        # Critic update(s) on the detached output (WGAN-GP, Gulrajani et al. Alg. 1).
        self.toggle_optimizer(opt_d)
        for _ in range(hp.n_critic):
            d_wgan = critic_loss(self._critic(image, target), self._critic(image, fake.detach()))
            # The eager critic even with compile=True: the penalty needs a double backward.
            gp = gradient_penalty(self.discriminator, target, fake.detach(), image, weight=hp.gp_weight)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_wgan + gp)
            opt_d.step()
        self.untoggle_optimizer(opt_d)

        # Generator update: reconstruction terms + adversarial term.
        self.toggle_optimizer(opt_g)
        terms = self.generator_losses(batch, fake)
        terms["g_adv"] = generator_adversarial_loss(self._critic(image, fake))
        loss = self._weighted(terms)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self._log_train(terms, loss, n)
        self.log_dict({"train/d_wgan": d_wgan.detach(), "train/gp": gp.detach()}, batch_size=n, sync_dist=True)
        if self.hparams.lr_decay_steps:
            for sched in self.lr_schedulers():
                sched.step()

    def _log_train(self, terms: dict[str, torch.Tensor], loss: torch.Tensor, n: int) -> None:
        # sync_dist: under DDP the logged value is the mean over the global batch, as with one
        # process, not rank 0's share of it (one small all-reduce per key and step).
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, batch_size=n, sync_dist=True)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(float(b) for b in hp.betas)  # torch rejects (0, 0.9) with an int 0
        # fused=True: one kernel for the whole update instead of torch's default multi-tensor
        # (foreach) path; the same Adam maths. None keeps torch's default.
        fused = True if hp.fused_adam else None
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=betas, fused=fused)
        opts = [opt_g]
        if self.discriminator is not None:
            opts.append(torch.optim.Adam(self.discriminator.parameters(), lr=hp.disc_lr, betas=betas, fused=fused))
        if not hp.lr_decay_steps:
            return opts[0] if len(opts) == 1 else opts
        # interval "step" counts batches in automatic optimisation; in manual optimisation
        # (stage 2) _adversarial_step steps the schedulers itself, once per batch.
        scheds = [
            {
                "scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(o, hp.lr_decay_steps, o.defaults["lr"] * 0.01),
                "interval": "step",
            }
            for o in opts
        ]
        return opts, scheds

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        fake = self.generate(batch).float().clamp(0, 1)
        target = batch["target"].float()
        # Per image, keyed by sample id, reduced in on_validation_epoch_end: under DDP each rank
        # sees part of the split and DistributedSampler pads the last round with repeated samples,
        # so a per-rank mean (or Lightning's mean of rank means) would not be the split's mean.
        rows = (
            torch.stack(
                [
                    (fake - target).abs().flatten(1).mean(1),
                    psnr(fake, target, reduction="none"),
                    ssim(fake, target, reduction="none"),
                ],
                dim=1,
            )
            .double()
            .cpu()
        )  # (B, 3)
        ids = batch.get("id") or [f"rank{self.global_rank}/batch{batch_idx}/{j}" for j in range(len(rows))]
        for sid, row in zip(ids, rows.tolist(), strict=True):
            self._val_scores[str(sid)] = row
        if batch_idx < self.hparams.num_sample_images and self.trainer.is_global_zero:
            self._samples.append(torch.cat([batch["image"][:1], fake[:1], target[:1]], dim=3).cpu())

    def on_validation_epoch_start(self) -> None:
        self._samples: list[torch.Tensor] = []
        self._val_scores: dict[str, list[float]] = {}

    def on_validation_epoch_end(self) -> None:
        scores = self._val_scores
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every rank calls this, whatever it holds: a collective that only some ranks reach hangs.
            gathered: list[dict[str, list[float]] | None] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, scores)
            scores = {k: v for part in gathered for k, v in (part or {}).items()}  # padding repeats ids: once each
        if scores:
            # Sorted ids and float64: the same sum in the same order on every rank and world size.
            l1, p, s = torch.tensor([scores[k] for k in sorted(scores)], dtype=torch.float64).mean(0).tolist()
            # Already the whole split's mean, the same on every rank (ModelCheckpoint reads val/psnr on
            # each). sync_dist with "max" of equal values changes nothing, exactly; it only keeps
            # Lightning from warning that an epoch-level value was logged without sync_dist.
            for key, value in (("val/l1", l1), ("val/psnr", p), ("val/ssim", s)):
                self.log(
                    key, value, prog_bar=key == "val/psnr", batch_size=len(scores), sync_dist=True, reduce_fx="max"
                )
        if not self._samples or self.trainer.sanity_checking:
            return
        self._write_samples(self._samples)

    def _run_dir(self) -> Path:
        """Where the logger writes (runs/stage1), without a collective.

        ``trainer.log_dir`` broadcasts from rank 0; called only from rank 0 (the samples) it
        waited forever for the other ranks, which were in the checkpoint barrier.
        """
        logger = self.trainer.logger
        if logger is None:
            return Path(self.trainer.default_root_dir)
        return Path(getattr(logger, "log_dir", None) or logger.save_dir or self.trainer.default_root_dir)

    def _write_samples(self, samples: list[torch.Tensor]) -> None:
        """Input | output | ground truth rows, as a PNG beside the logs and in TensorBoard (rank 0 only)."""

        width = max(s.shape[3] for s in samples)
        grid = torch.cat([F.pad(s, (0, width - s.shape[3])) for s in samples], dim=2)[0]  # (3, ΣH, W)
        out = self._run_dir() / "samples" / f"step{self.global_step:07d}.png"
        arr = (grid.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
        atomic_save_image(out, Image.fromarray(arr))
        experiment = getattr(self.logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image("val/samples", grid.clamp(0, 1), self.global_step)

    # ------------------------------------------------------------------ checkpoints
    def configure_callbacks(self) -> list[L.Callback]:
        # SIGTERM stops every rank within seconds, saving last.ckpt (training.callbacks.GracefulStop).
        callbacks: list[L.Callback] = [GracefulStop()]
        # model.safetensors beside best.ckpt, so the generator can be shared without a pickle. Only
        # when the trainer checkpoints at all (the speed benchmark does not).
        if self.trainer.checkpoint_callbacks:
            callbacks.append(GeneratorSafetensors())
        return callbacks

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1 and self.global_rank > 0:
            # seed_everything gives every rank the same torch seed, so every rank would draw the same
            # crop offsets, flips and gradient-penalty mixes for its own images. Rank 0 keeps the
            # stream of a single-process run; DDP has already made the weights equal on all ranks.
            torch.manual_seed(torch.initial_seed() + self.global_rank)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Exported models record the config they were trained with (export/manifest.py).
        checkpoint["config"] = self.training_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer
        if trainer is not None and trainer.state.fn == "fit":
            check_resumed_hparams(dict(self.hparams), BokehGAN, checkpoint, trainer.ckpt_path)
        self.training_config = checkpoint.get("config", {}) or {}
