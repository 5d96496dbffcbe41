import json
import os
import signal

import pytest
import torch

from molgan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from molgan.cli import main
from molgan.train import RunConfig, TrainConfig, Trainer, TrainingDiverged


def config(steps, **kwargs):
    base = dict(steps=steps, batch_size=16, n_critic=2, log_every=5, eval_every=1000,
                eval_samples=50, ckpt_every=1000, seed=3)
    base.update(kwargs)
    return RunConfig(TrainConfig(**base))


def parameters(trainer):
    return {**{f"g.{k}": v for k, v in trainer.generator.state_dict().items()},
            **{f"d.{k}": v for k, v in trainer.critic.state_dict().items()}}


def assert_trained_alike(a, b, run, steps, rtol, atol):
    """Weights of two trainings that may differ only by float rounding. Adam amplifies
    rounding where a gradient is near 0 (``m / sqrt(v)`` is then about +-1 either way), so
    such an element can move up to the learning rate per update the other way: at least
    99.9% of the elements of each tensor must agree to ``rtol`` / ``atol``, and every element
    to twice the faster network's rate per update."""
    updates = steps * run.train.n_critic
    fastest = max(run.train.generator_lr, run.train.critic_lr)
    for key in a:
        close = torch.isclose(b[key], a[key], rtol=rtol, atol=atol)
        assert close.float().mean() >= 0.999, key
        assert (b[key] - a[key]).abs().max() <= 2 * fastest * updates, key


def train_straight_and_resumed(make_run, steps, data, tmp_path):
    """Train ``make_run(steps)`` in one go and in two halves (``--resume`` between them);
    assert both end with identical weights and return ``(straight, resumed)`` trainers."""
    straight = Trainer(make_run(steps), data, tmp_path / "straight")
    straight.fit()
    Trainer(make_run(steps // 2), data, tmp_path / "split").fit()
    resumed = Trainer(make_run(steps), data, tmp_path / "split")
    resumed.resume()
    assert resumed.step == steps // 2
    resumed.fit()
    a, b = parameters(straight), parameters(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    return straight, resumed


def test_train_20_resume_20_equals_train_40(qm9, tmp_path):
    train_straight_and_resumed(config, 40, qm9, tmp_path)
    steps = [json.loads(line)["step"]
             for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20, 25, 30, 35, 40]


def test_truncated_checkpoint_is_a_one_line_error(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1, "weights": torch.ones(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_interrupted_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})

    def crash(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_checkpoints_load_with_weights_only(qm9, tmp_path):
    trainer = Trainer(config(2), qm9, tmp_path)
    trainer.fit()
    bundle = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert bundle["step"] == 2 and bundle["vocab"]["max_atoms"] == 9


def test_sigterm_saves_a_checkpoint_and_stops_cleanly(qm9, tmp_path):
    trainer = Trainer(config(50), qm9, tmp_path)

    def on_step(step, postfix):
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    result = trainer.fit(on_step)
    assert result.status == "interrupted" and result.step == 7
    assert load_checkpoint(tmp_path)["step"] == 7
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(qm9, tmp_path):
    trainer = Trainer(config(30, ckpt_every=5), qm9, tmp_path)

    def on_step(step, postfix):
        if step == 10:  # poison the critic after the step-10 checkpoint
            with torch.no_grad():
                trainer.critic.mlp[-1].bias.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="non-finite"):
        trainer.fit(on_step)
    assert load_checkpoint(tmp_path)["step"] == 10


def test_cli_train_on_qm9_writes_the_run_files(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "qm9", "--steps", "50", "--batch-size", "16",
                 "--eval-every", "25", "--eval-samples", "200", "--out", str(out),
                 "--cache-dir", str(cache_dir)])
    assert code == 0
    for name in ("config.json", "metrics.jsonl", "ckpt.pt", "training_curves.png"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 50
    for key in ("loss_d", "loss_g", "wasserstein", "gp", "real_score", "seconds", "validity",
                "uniqueness", "novelty"):
        assert key in records[-1]
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 50
    # a second train into the same dir without --resume is refused in one line
    assert main(["train", "--steps", "1", "--out", str(out), "--cache-dir", str(cache_dir)]) == 1
    assert "already holds a run" in capsys.readouterr().err


def test_cli_resume_rejects_model_changes_and_truncated_checkpoints(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--steps", "2", "--batch-size", "8", "--out", str(out),
            "--cache-dir", str(cache_dir)]
    assert main(args) == 0
    assert main(args + ["--resume", "--z-dim", "64"]) == 1
    assert "cannot change z_dim" in capsys.readouterr().err
    ckpt = out / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert main(args + ["--resume", "--steps", "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "truncated or corrupt" in err


def test_config_file_sets_defaults_and_flags_override(cache_dir, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[train]\nsteps = 3\nbatch_size = 8\n[generator]\nz_dim = 12\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--steps", "2", "--out", str(out),
                 "--cache-dir", str(cache_dir)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["steps"] == 2 and saved["train"]["batch_size"] == 8
    assert saved["generator"]["z_dim"] == 12


def test_wall_clock_budget_stops_with_a_checkpoint(qm9, tmp_path):
    trainer = Trainer(config(10_000, max_seconds=1.0), qm9, tmp_path)
    result = trainer.fit()
    assert result.status == "out_of_time" and 0 < result.step < 10_000
    assert load_checkpoint(tmp_path)["step"] == result.step


def test_adam_implementations_give_the_same_training(qm9, tmp_path):
    results = []
    for impl in ("loop", "foreach", "fused"):
        trainer = Trainer(config(3), qm9, tmp_path / impl, adam=impl)
        trainer.fit()
        results.append(parameters(trainer))
    for other in results[1:]:
        assert_trained_alike(results[0], other, config(3), 3, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_keeps_losses_penalty_and_gradients_close_to_fp32(qm9, tmp_path):
    trainers = {p: Trainer(config(1, batch_size=64, precision=p), qm9, tmp_path / p)
                for p in ("fp32", "bf16")}
    parts = {p: [v.item() for v in t.critic_step()] for p, t in trainers.items()}
    # loss, W, penalty; W is a difference of mean scores of order 1, so bf16 rounding of
    # the scores shows as an absolute error (up to 1e-3 here), however small W itself is
    assert parts["bf16"] == pytest.approx(parts["fp32"], rel=1e-2, abs=1e-3)
    grads = {p: torch.cat([q.grad.flatten() for q in t.critic.parameters()])
             for p, t in trainers.items()}
    cosine = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
    assert cosine > 0.999
    for p, t in trainers.items():
        assert all(q.dtype == torch.float32 for q in t.critic.parameters())
    losses = {p: t.generator_step().item() for p, t in trainers.items()}
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=2e-2, abs=1e-3)


def test_critic_drift_adds_the_mean_squared_real_score_to_the_critic_loss_only(qm9, tmp_path):
    """Same seed, same batch: the drift only adds eps * E[D(real)^2] >= eps * E[D(real)]^2
    (Jensen) to the critic's loss; the Wasserstein estimate, penalty and score are shared."""
    trainers = {eps: Trainer(config(1, critic_drift=eps), qm9, tmp_path / str(eps))
                for eps in (0.0, 0.5)}
    parts = {eps: [v.item() for v in t.critic_step()] for eps, t in trainers.items()}
    (loss0, w0, gp0, real0, *_), (loss1, w1, gp1, real1, *_) = parts[0.0], parts[0.5]
    assert (w1, gp1, real1) == pytest.approx((w0, gp0, real0), rel=1e-6, abs=1e-7)
    assert loss1 - loss0 >= 0.5 * real0 ** 2 - 1e-6 and loss1 - loss0 > 0


def test_feature_penalty_adds_its_term_to_the_critic_loss_only(qm9, tmp_path):
    """Same seed, same batch: feature_penalty mu adds mu * E[max(0, ||dD/df|| - 1)^2] (>= 0)
    to the critic's loss; the estimate, penalty and scores are shared. On a critic without
    batch features it has nothing to act on: the step is the same as without it. A negative
    weight is refused."""
    from molgan.critic import CriticConfig

    trainers = {mu: Trainer(config(1, feature_penalty=mu, data_penalty=0.0), qm9,
                            tmp_path / str(mu)) for mu in (0.0, 1e4)}
    with torch.no_grad():  # make the critic steep in its batch features: the term is active
        for t in trainers.values():
            first = next(m for m in t.critic.mlp.modules() if isinstance(m, torch.nn.Linear))
            first.weight[:, -t.critic.num_batch_features:] *= 50
    parts = {mu: [v.item() for v in t.critic_step()] for mu, t in trainers.items()}
    (loss0, w0, gp0, real0, f0, d0), (loss1, w1, gp1, real1, f1, d1) = parts[0.0], parts[1e4]
    assert d0 == d1 == 0
    assert (w1, gp1, real1) == pytest.approx((w0, gp0, real0), rel=1e-6, abs=1e-7)
    assert f0 == 0 and f1 > 0
    assert loss1 - loss0 == pytest.approx(1e4 * f1, rel=1e-4)
    plain = {mu: Trainer(RunConfig(config(1, feature_penalty=mu).train,
                                   critic=CriticConfig(minibatch_distance=False)),
                         qm9, tmp_path / f"plain{mu}") for mu in (0.0, 1e4)}
    steps = {mu: t.critic_step() for mu, t in plain.items()}
    assert steps[1e4].feature_penalty.item() == 0
    assert steps[1e4].loss.item() == steps[0.0].loss.item()
    with pytest.raises(ValueError, match="feature_penalty must be >= 0"):
        Trainer(config(1, feature_penalty=-1.0), qm9, tmp_path / "negative")


def test_data_penalty_adds_its_term_and_is_logged(qm9, tmp_path):
    """Same seed, same batch: data_penalty nu adds nu * E[max(0, ||grad_G D|| - 1)^2] over
    the real and fake graphs; the estimate, penalty and scores are shared; fit logs data_gp."""
    trainers = {nu: Trainer(config(1, data_penalty=nu, feature_penalty=0.0), qm9,
                            tmp_path / str(nu)) for nu in (0.0, 1e3)}
    with torch.no_grad():  # a steep critic: the one-sided term is active
        for t in trainers.values():
            for p in t.critic.mlp.parameters():
                p.mul_(4)
    parts = {nu: t.critic_step() for nu, t in trainers.items()}
    off, on = parts[0.0], parts[1e3]
    assert (on.wasserstein.item(), on.gradient_penalty.item()) == pytest.approx(
        (off.wasserstein.item(), off.gradient_penalty.item()), rel=1e-6, abs=1e-7)
    assert off.data_penalty.item() == 0 and on.data_penalty.item() > 0
    assert (on.loss - off.loss).item() == pytest.approx(1e3 * on.data_penalty.item(), rel=1e-4)
    logged = Trainer(config(5, data_penalty=1.0, feature_penalty=0.0, log_every=5), qm9,
                     tmp_path / "logged")
    logged.fit()
    record = json.loads((tmp_path / "logged" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["data_gp"] >= 0 and "feature_gp" not in record


@pytest.mark.parametrize("name", ["log_every", "eval_every", "ckpt_every"])
def test_intervals_below_one_step_are_refused_with_their_name(qm9, tmp_path, name):
    with pytest.raises(ValueError, match=f"{name} must be at least 1"):
        Trainer(config(1, **{name: 0}), qm9, tmp_path)


def _inductor_compiles() -> bool:
    """Whether torch.compile's default backend builds code here (it needs a C++ compiler)."""
    try:
        torch.compile(lambda t: t * 2 + 1)(torch.ones(3))
    except Exception:  # noqa: BLE001 - any backend failure means: cannot test compile here
        return False
    return True


@pytest.mark.parametrize("compile_loss", [True, False])
def test_compiled_networks_train_like_the_plain_ones(qm9, tmp_path, compile_loss):
    if not _inductor_compiles():
        pytest.skip("torch.compile's inductor backend cannot build code on this machine")
    trainers = {c: Trainer(config(1, compile=c, compile_loss=compile_loss), qm9,
                           tmp_path / str(c)) for c in (False, True)}
    for trainer in trainers.values():
        trainer.prepare_networks()
    # the whole critic loss (penalty included) is one compiled function, or only the scoring
    assert (trainers[True]._critic_loss != trainers[True]._critic_objective) == compile_loss
    assert (trainers[True].critic_ddp is not trainers[True].critic) != compile_loss
    assert trainers[True].generator_ddp is not trainers[True].generator
    for _ in range(2):  # the second steps run the compiled code with updated weights
        parts = {c: [v.item() for v in t.critic_step()] for c, t in trainers.items()}
        assert parts[True] == pytest.approx(parts[False], rel=1e-4, abs=1e-6)
        losses = {c: t.generator_step().item() for c, t in trainers.items()}
        assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-6)
    assert_trained_alike(parameters(trainers[False]), parameters(trainers[True]), config(1), 2,
                         rtol=1e-4, atol=1e-5)


def test_unknown_precision_is_rejected(qm9, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        Trainer(config(1, precision="fp8"), qm9, tmp_path)


def test_minibatch_distance_run_ships_a_batch_independent_critic(qm9, tmp_path):
    from molgan.critic import Critic, CriticConfig

    run = RunConfig(config(2).train, critic=CriticConfig(minibatch_distance=True,
                                                         reference_size=32))
    trainer = Trainer(run, qm9, tmp_path)
    assert trainer.critic.reference_x.shape == (32, 9) and trainer.critic.reference_x.any()
    trainer.fit()
    critic = Critic.from_checkpoint(tmp_path)
    torch.testing.assert_close(critic.reference_adj, trainer.critic.reference_adj)
    smiles = ["CCO", "c1ccccc1", "CC#N", "O=C1CCCC1"]
    together = critic.score(smiles)
    alone = torch.cat([critic.score([s]) for s in smiles])
    torch.testing.assert_close(alone, together)


def test_runs_saved_before_a_field_existed_keep_their_recipe():
    old = {"train": {"steps": 10}, "critic": {"critic_agg": 64}}
    restored = RunConfig.from_dict(old)  # a checkpoint written before these fields
    assert restored.critic.minibatch_distance is False
    assert restored.critic.minibatch_kernels == 0
    assert restored.train.valence_penalty == 0.0
    assert restored.generator.gen_valence_mask is False
    assert restored.train.decode == "argmax" and restored.train.diversity_rl == 0.0
    assert restored.train.sample_temperature == restored.train.rl_temperature == 1.0
    assert restored.train.critic_draws == restored.train.draw_realism == 0.0
    assert restored.generator.valence_draw is False
    fresh = RunConfig.from_dict(old, saved=False)  # a user's config file: today's defaults
    assert fresh.critic.minibatch_distance is True and fresh.train.valence_penalty == 1.0
    assert fresh.generator.gen_valence_mask is True
    assert fresh.train.decode == "sample" and fresh.train.diversity_rl == 1.0
    assert fresh.train.sample_temperature == 2.0 and fresh.train.rl_temperature == 1.6
    assert fresh.generator.valence_draw is True
    assert fresh.train.critic_draws == 0.25  # stop 21's recipe
    assert fresh.train.repeat_threshold == 1.0 and fresh.generator.draw_no_isolated is True
    assert restored.train.repeat_threshold == 4.0
    assert fresh.train.rl_draws == 4 and fresh.train.draw_realism == 0.5  # stop 23's recipe
    assert fresh.train.realism_valid_only is True and fresh.train.repeat_memory == "drawn"
    assert restored.train.rl_draws == 1 and restored.train.realism_valid_only is False
    assert restored.train.repeat_memory == "argmax" and restored.train.generator_ema == 0.0
    assert fresh.train.generator_ema == 0.999
    assert fresh.train.feature_penalty == fresh.train.data_penalty == 10.0  # stop 26's
    assert restored.train.feature_penalty == restored.train.data_penalty == 0.0
    assert fresh.train.lr_g == 5e-4 and fresh.train.lr == 3e-4  # stop 27's
    assert restored.train.lr_g is None


def test_bank_critic_trains_and_resumes_exactly(qm9, tmp_path):
    """The banks are critic buffers: saved in the checkpoint, so 6 + 6 steps equal 12."""
    def bank_config(steps):
        run = config(steps)
        run.critic.minibatch_bank = 64
        return run

    straight, _ = train_straight_and_resumed(bank_config, 12, qm9, tmp_path)
    assert int(straight.critic.bank_seen[1]) == 12 * 2 * 16  # steps * n_critic * batch


def test_temperature_schedule_is_geometric_logged_and_resumes(qm9, tmp_path):
    run = config(8, temperature=2.0, temperature_end=0.5, temperature_steps=4, log_every=2)
    trainer = Trainer(run, qm9, tmp_path)
    assert [trainer.temperature(s) for s in (0, 2, 4, 8)] == pytest.approx([2.0, 1.0, 0.5, 0.5])
    assert Trainer(config(1), qm9, tmp_path / "constant").temperature(100) == 1.0
    trainer.fit()
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["temperature"] for r in logged] == pytest.approx(
        [2.0 * 0.25 ** (s / 4) if s < 4 else 0.5 for s in (2, 4, 6, 8)])
    resumed = Trainer(run, qm9, tmp_path)
    resumed.resume()
    assert resumed.temperature() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive"):
        Trainer(config(1, temperature_end=0.0), qm9, tmp_path / "bad")


def test_valence_mask_spectral_norm_and_mean_pool_train_and_resume_exactly(qm9, tmp_path):
    def run(steps):
        r = config(steps)
        r.generator.gen_valence_mask = True
        r.critic.spectral_norm = True
        r.critic.critic_pool = "mean"
        return r

    train_straight_and_resumed(run, 6, qm9, tmp_path)


def test_repeat_terms_and_diversity_term_train_log_and_resume_exactly(qm9, tmp_path):
    """The repeat memory is in the checkpoint, so 6 + 6 steps equal 12 with it on."""
    def run(steps):
        return config(steps, repeat_penalty=1.0, repeat_window=64, repeat_threshold=1.0,
                      repeat_critic=1.0, repeat_start=4,
                      diversity_sensitive=1.0, diversity_rl=1.0, log_every=3)

    straight, resumed = train_straight_and_resumed(run, 12, qm9, tmp_path)
    assert torch.equal(straight.repeats.keys, resumed.repeats.keys)
    assert straight.repeats.position == 12 * 16 % 64
    logged = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl")
              .read_text().splitlines()]
    assert all(0 <= r["repeated"] <= 1 and 0 <= r["drawn_valid"] <= 1 for r in logged)
    assert logged[-1]["rdkit_seconds"] > 0  # the term starts at step 4 (repeat_start)
    assert len(logged) == 4
    with pytest.raises(ValueError, match="repeat_threshold"):
        Trainer(config(1, repeat_threshold=0.5), qm9, tmp_path / "bad")


def test_repeat_penalty_waits_for_repeat_start(qm9, tmp_path):
    """Before repeat_start the memory fills but the loss is the plain one: same weights.
    The generators start with zero output weights, so every fake is the same graph and the
    penalty, once on, has something to act on."""
    def trained(name, **kwargs):  # the RL term and critic draws (on by default) off; the
        # memory of argmax graphs, as a drawn one would take its draws from the noise stream
        trainer = Trainer(config(3, diversity_rl=0.0, critic_draws=0.0, repeat_memory="argmax",
                                 **kwargs), qm9, tmp_path / name)
        with torch.no_grad():
            trainer.generator.to_x.weight.zero_()
            trainer.generator.to_adj.weight.zero_()
        trainer.fit()
        return trainer

    waiting = trained("waiting", repeat_penalty=5.0, repeat_threshold=1.0, repeat_start=3)
    plain, active = trained("plain"), trained("on", repeat_penalty=5.0, repeat_threshold=1.0)
    a, b = parameters(waiting), parameters(plain)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert waiting.repeats.position == 3 * 16 and waiting.last_repeated > 0
    assert active.last_repeated > 0
    assert not torch.equal(parameters(active)["g.to_x.bias"], a["g.to_x.bias"])


@pytest.mark.parametrize("memory", ["argmax", "drawn"])
def test_repeat_memory_remembers_argmax_or_drawn_graphs(qm9, tmp_path, memory):
    """``argmax``: the memory holds the argmax graphs. ``drawn``: it holds the graphs drawn
    for the RL term (the same draw), the outputs of ``molgan sample --decode sample``."""
    from molgan.graph import argmax_graph
    from molgan.repeats import graph_keys

    trainer = Trainer(config(1, repeat_memory=memory, diversity_rl=1.0, repeat_window=64,
                             rl_draws=1),  # K draws each: test_rl_draws_draws_k_graphs...
                      qm9, tmp_path / memory)
    with torch.no_grad():
        fake = trainer._fake_batch(trainer._latents(), trainer.generator)
    noise = trainer.noise.get_state()
    trainer._repeat_terms(fake)
    trainer.noise.set_state(noise)
    drawn, argmax = graph_keys(*trainer._draw(fake)), graph_keys(*argmax_graph(fake))
    assert not torch.equal(drawn, argmax)  # an untrained generator is far from one-hot
    expected = drawn if memory == "drawn" else argmax
    assert torch.equal(trainer.repeats.keys[:16], expected)
    with pytest.raises(ValueError, match="repeat_memory"):
        Trainer(config(1, repeat_memory="both"), qm9, tmp_path / "bad")
    with pytest.raises(ValueError, match="diversity_reward"):
        Trainer(config(1, diversity_reward="ratio"), qm9, tmp_path / "bad")


def test_the_rl_term_draws_at_its_temperature(qm9, tmp_path):
    """rl_temperature T: the RL term's graphs are draws from softmax(log p / T) of the relaxed
    fakes p, with the trainer's noise stream (plain draws here, not within valences)."""
    from molgan.generator import GeneratorConfig, draw_graph
    from molgan.graph import DenseGraph

    run = RunConfig(config(1, rl_temperature=2.0).train, GeneratorConfig(valence_draw=False))
    trainer = Trainer(run, qm9, tmp_path / "run")
    with torch.no_grad():
        fake = trainer._fake_batch(trainer._latents(), trainer.generator)
    log_probs = DenseGraph(fake.x.clamp(min=1e-9).log(), fake.adj.clamp(min=1e-9).log())
    noise = trainer.noise.get_state()
    drawn = trainer._draw(fake)
    trainer.noise.set_state(noise)
    hot = draw_graph(log_probs, 2.0, generator=trainer.noise)
    trainer.noise.set_state(noise)
    cold = draw_graph(log_probs, 1.0, generator=trainer.noise)
    assert all(torch.equal(a, b) for a, b in zip(drawn, hot))
    assert not torch.equal(drawn[1], cold[1])
    trainer.config.train.atom_temperature = 0.5  # atoms apart from the bonds
    trainer.noise.set_state(noise)
    split = trainer._draw(fake)
    trainer.noise.set_state(noise)
    expected = draw_graph(log_probs, 2.0, generator=trainer.noise, atom_temperature=0.5)
    assert all(torch.equal(a, b) for a, b in zip(split, expected))
    assert torch.equal(split[1], hot[1]) and not torch.equal(split[0], hot[0])
    with pytest.raises(ValueError, match="positive"):
        Trainer(config(1, rl_temperature=0.0), qm9, tmp_path / "bad")


def test_a_models_sample_temperature_is_its_default(qm9, tmp_path):
    from molgan.sample import Sampler

    trainer = Trainer(config(1, decode="sample", sample_temperature=0.5), qm9, tmp_path / "run")
    trainer.save()
    assert Sampler.from_checkpoint(tmp_path / "run").temperature == 0.5
    assert Sampler.from_checkpoint(tmp_path / "run", temperature=2.0).temperature == 2.0
    argmax = Sampler.from_checkpoint(tmp_path / "run", decode="argmax")
    assert argmax.decode == "argmax" and argmax.temperature == 1.0
    assert Sampler.from_checkpoint(tmp_path / "run").atom_temperature is None
    with pytest.raises(ValueError, match="positive"):
        Trainer(config(1, sample_temperature=0.0), qm9, tmp_path / "bad")
    for bad in (-1.0, 0.0):
        with pytest.raises(ValueError, match="positive"):
            Trainer(config(1, atom_temperature=bad), qm9, tmp_path / "bad")
    split = Trainer(config(1, decode="sample", atom_temperature=0.8), qm9, tmp_path / "split")
    split.save()
    assert Sampler.from_checkpoint(tmp_path / "split").atom_temperature == 0.8
    assert Sampler.from_checkpoint(tmp_path / "split", atom_temperature=1.5).atom_temperature == 1.5
    with pytest.raises(ValueError, match="decode='sample'"):
        Sampler.from_checkpoint(tmp_path / "split", decode="argmax", atom_temperature=1.5)



def test_generator_ema_averages_the_weights_resumes_and_is_what_samples_use(qm9, tmp_path):
    """The average follows beta_t = min(beta, (1 + t) / (10 + t)) step by step, training is
    unchanged by it, it resumes exactly, is exported, and Sampler loads it by default (the
    last weights with weights='live', or when a run kept no average)."""
    from molgan.checkpoint import export_model
    from molgan.sample import Sampler

    beta = 0.2  # the cap applies from step 2 on: (1 + 2) / (10 + 2) > 0.2
    trainer = Trainer(config(4, generator_ema=beta), qm9, tmp_path / "ema")
    expected = {k: v.detach().clone() for k, v in trainer.generator.named_parameters()}

    def check(step, postfix):
        t = step - 1
        decay = min(beta, (1 + t) / (10 + t))
        for name, live in trainer.generator.named_parameters():
            expected[name] = decay * expected[name] + (1 - decay) * live.detach()
        average = dict(trainer.generator_average.named_parameters())
        for name in expected:
            torch.testing.assert_close(average[name], expected[name], msg=name)

    trainer.fit(on_step=check)
    assert any(not torch.equal(x, y) for x, y in zip(trainer.generator_average.parameters(),
                                                      trainer.generator.parameters()))
    plain = Trainer(config(4, generator_ema=0.0), qm9, tmp_path / "plain")
    plain.fit()
    a, b = parameters(plain), parameters(trainer)
    for key in a:
        assert torch.equal(a[key], b[key]), key

    def weights(generator):
        return [p.detach() for p in generator.parameters()]

    for source, kind, reference in ((tmp_path / "ema", "average", trainer.generator_average),
                                    (tmp_path / "ema", "live", trainer.generator),
                                    (tmp_path / "plain", "average", plain.generator)):
        loaded = Sampler.from_checkpoint(source, weights=kind).generator
        assert all(torch.equal(x, y) for x, y in zip(weights(loaded), weights(reference)))
    with pytest.raises(ValueError, match="weights"):
        Sampler.from_checkpoint(tmp_path / "ema", weights="newest")
    export_model(load_checkpoint(tmp_path / "ema"), tmp_path / "slim.pt", note={})
    assert "generator_ema" in load_checkpoint(tmp_path / "slim.pt")
    with pytest.raises(ValueError, match="generator_ema"):
        Trainer(config(1, generator_ema=1.0), qm9, tmp_path / "bad")

    straight, resumed = train_straight_and_resumed(
        lambda steps: config(steps, generator_ema=0.9), 6, qm9, tmp_path / "resume")
    for x, y in zip(weights(straight.generator_average), weights(resumed.generator_average)):
        assert torch.equal(x, y)


def test_linear_lr_decay_sets_both_rates_per_step_and_resumes_exactly(qm9, tmp_path):
    """lr_decay linear: the updates of generator step t (0-based) of T use lr (1 - t / T), for
    the generator's and the critic's own base rates; a run resumed from its step-3
    checkpoint ends with the weights of the uninterrupted run."""
    import shutil

    run = config(6, lr_decay="linear", lr_g=3e-4, lr_d=1e-4, ckpt_every=3)
    straight = Trainer(run, qm9, tmp_path / "straight")
    seen = []

    def record(step, postfix):
        seen.append((straight.opt_g.param_groups[0]["lr"], straight.opt_d.param_groups[0]["lr"]))
        if step == 3:
            shutil.copytree(tmp_path / "straight", tmp_path / "at3")

    straight.fit(on_step=record)
    expected = [(3e-4 * (1 - t / 6), 1e-4 * (1 - t / 6)) for t in range(6)]
    assert [r for pair in seen for r in pair] == pytest.approx(
        [r for pair in expected for r in pair], rel=1e-12)
    resumed = Trainer(run, qm9, tmp_path / "at3")
    resumed.resume()
    assert resumed.step == 3
    resumed.fit()
    a, b = parameters(straight), parameters(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    constant = Trainer(config(2), qm9, tmp_path / "constant")
    assert [constant.learning_rate_factor(t) for t in (0, 1)] == [1.0, 1.0]
    with pytest.raises(ValueError, match="lr_decay"):
        Trainer(config(1, lr_decay="cosine"), qm9, tmp_path / "bad")


def test_critic_draws_show_the_critic_the_sampled_graphs(qm9, tmp_path):
    """critic_draws q: the first q * B fakes of a critic batch become the one-hot graphs the
    RL term would draw from them (same noise stream); the rest stay relaxed."""
    from molgan.graph import one_hot_graph

    trainer = Trainer(config(1, critic_draws=0.5), qm9, tmp_path / "run")
    with torch.no_grad():
        fake = trainer._fake_batch(trainer._latents(), trainer.generator)
    noise = trainer.noise.get_state()
    mixed = trainer._with_draws(fake)
    trainer.noise.set_state(noise)
    expected = one_hot_graph(*trainer._draw(type(fake)(fake.x[:8], fake.adj[:8])),
                             fake.x.shape[-1], fake.adj.shape[-1])
    assert torch.equal(mixed.x[:8], expected.x) and torch.equal(mixed.adj[:8], expected.adj)
    assert torch.equal(mixed.x[8:], fake.x[8:]) and torch.equal(mixed.adj[8:], fake.adj[8:])
    assert torch.equal(mixed.adj[:8], mixed.adj[:8].transpose(1, 2))
    trainer.config.train.critic_draws = 0.0
    assert trainer._with_draws(fake) is fake
    with pytest.raises(ValueError, match="critic_draws"):
        Trainer(config(1, critic_draws=1.5), qm9, tmp_path / "bad")


def test_draw_realism_adds_the_critics_standardized_score_to_the_reward(qm9, tmp_path,
                                                                         monkeypatch):
    """draw_realism rho: the RL reward of each draw gains rho * (D(g) - mean) / std, with D
    the critic's score of the one-hot draw; training with it resumes exactly."""
    import molgan.train as train_module
    from molgan.graph import one_hot_graph

    trainer = Trainer(config(1, draw_realism=2.0, realism_valid_only=False), qm9,
                      tmp_path / "run")
    with torch.no_grad():
        fake = trainer._fake_batch(trainer._latents(), trainer.generator)
    drawn = trainer._draw(fake)
    scores = trainer.critic(*one_hot_graph(*drawn, fake.x.shape[-1], fake.adj.shape[-1]))
    standardized = trainer._draw_scores(drawn)
    torch.testing.assert_close(standardized, (scores - scores.mean()) / scores.std())
    seen = {}
    monkeypatch.setattr(train_module, "policy_gradient",
                        lambda fake, x, adj, rewards, *_: seen.setdefault("r", rewards).sum())
    counts = torch.zeros(16, dtype=torch.long)
    trainer._diversity_rl_term(fake, drawn, counts)
    with_realism = seen.pop("r")
    trainer.config.train.draw_realism = 0.0
    trainer._diversity_rl_term(fake, drawn, counts)
    torch.testing.assert_close(with_realism - seen["r"], 2.0 * standardized)
    among = torch.arange(16) % 3 == 0  # valid only: standardized among the flagged draws
    chosen = scores[among]
    torch.testing.assert_close(trainer._draw_scores(drawn, among),
                               torch.where(among, (scores - chosen.mean()) / chosen.std(), 0.0))
    assert not trainer._draw_scores(drawn, torch.arange(16) == 0).any()
    monkeypatch.undo()
    train_straight_and_resumed(lambda steps: config(steps, critic_draws=0.25, draw_realism=1.0),
                               6, qm9, tmp_path / "resume")


def test_valence_draw_makes_the_rl_terms_draws_and_log_probs_respect_valences(qm9, tmp_path,
                                                                               monkeypatch):
    """GeneratorConfig.valence_draw: the trainer's draws (RL term, critic draws) respect every
    valence, and the RL term takes their log-probabilities under that same draw."""
    import molgan.train as train_module
    from molgan.chem import max_valences
    from molgan.generator import GeneratorConfig

    def run(steps):
        return RunConfig(config(steps, critic_draws=0.5).train, GeneratorConfig(valence_draw=True))

    trainer = Trainer(run(1), qm9, tmp_path / "run")
    with torch.no_grad():
        fake = trainer._fake_batch(trainer._latents(), trainer.generator)
    x_idx, adj_idx = trainer._draw(fake)
    cap = torch.tensor(max_valences(trainer.vocab))
    exists = x_idx > 0
    valence = (adj_idx.long() * exists[:, None, :]).sum(-1)
    assert (valence <= cap[x_idx.long()]).all()
    seen = {}
    original = train_module.policy_gradient
    monkeypatch.setattr(train_module, "policy_gradient",
                        lambda *args: seen.setdefault("valences", args[4]) is not None
                        and original(*args))
    trainer.fit()
    assert torch.equal(seen["valences"], cap)


def test_confident_pair_order_is_the_same_in_the_draws_and_their_log_probs(qm9, tmp_path,
                                                                            monkeypatch):
    """valence_draw_order='confident' with draw_no_isolated: the RL term's draws and the
    log-probabilities it takes of them use one and the same per-graph pair order (not the
    row-major one) and the same rule against isolated atoms, and training with them resumes
    exactly."""
    import molgan.train as train_module
    from molgan.generator import GeneratorConfig

    def run(steps):  # critic draws off: every draw is the RL term's
        return RunConfig(config(steps, critic_draws=0.0).train,
                         GeneratorConfig(valence_draw=True, valence_draw_order="confident",
                                         draw_no_isolated=True))

    seen: dict[str, list] = {"drawn": [], "log_prob": []}
    draw, gradient = train_module.draw_graph, train_module.policy_gradient

    def recording_draw(*args, **kwargs):
        seen["drawn"].append(kwargs["pair_order"])
        assert kwargs["no_isolated"] is True
        return draw(*args, **kwargs)

    def recording_gradient(*args):
        seen["log_prob"].append(args[5])
        assert args[6] is True
        return gradient(*args)

    monkeypatch.setattr(train_module, "draw_graph", recording_draw)
    monkeypatch.setattr(train_module, "policy_gradient", recording_gradient)
    Trainer(run(2), qm9, tmp_path / "run").fit()
    assert len(seen["log_prob"]) == 2
    drawn_for_rl = [order for order in seen["drawn"] if order is not None][-2:]
    for a, b in zip(drawn_for_rl, seen["log_prob"]):
        assert torch.equal(a, b)
        assert not torch.equal(b, torch.arange(b.shape[1]).expand_as(b))
    monkeypatch.undo()
    train_straight_and_resumed(run, 4, qm9, tmp_path / "resume")


def test_rl_draws_draws_k_graphs_from_each_fake_with_a_leave_one_out_baseline(qm9, tmp_path,
                                                                            monkeypatch):
    """rl_draws K: the RL term draws K graphs from each fake (the batch repeated block by
    block), rewards all of them and hands K to the policy gradient (leave-one-out baseline);
    training with it resumes exactly."""
    import molgan.train as train_module

    with pytest.raises(ValueError, match="rl_draws"):
        Trainer(config(1, rl_draws=0), qm9, tmp_path / "bad")
    seen = []
    original = train_module.policy_gradient

    def recording_gradient(*args):
        seen.append(args)
        return original(*args)

    monkeypatch.setattr(train_module, "policy_gradient", recording_gradient)
    trainer = Trainer(config(1, rl_draws=3, critic_draws=0.0), qm9, tmp_path / "run")
    trainer.fit()
    fake, x_idx, adj_idx, rewards = seen[0][:4]
    assert seen[0][7] == 3 and x_idx.shape[0] == adj_idx.shape[0] == rewards.shape[0] == 48
    blocks = fake.x.view(3, 16, *fake.x.shape[1:])  # the tempered fakes, three equal copies
    assert torch.equal(blocks[0], blocks[1]) and torch.equal(blocks[0], blocks[2])
    assert not all(torch.equal(adj_idx[b], adj_idx[16 + b]) for b in range(16))  # new draws
    monkeypatch.undo()
    train_straight_and_resumed(lambda steps: config(steps, rl_draws=2), 4, qm9,
                               tmp_path / "resume")
    drawn = Trainer(config(2, rl_draws=3, repeat_memory="drawn", repeat_penalty=0.1), qm9,
                    tmp_path / "drawn")  # the memory remembers every draw
    drawn.fit()
    assert int((drawn.repeats.keys != -1).sum()) == 2 * 3 * 16


def test_descriptor_match_adds_its_weighted_reward_logs_distances_and_resumes(qm9, tmp_path,
                                                                             monkeypatch):
    """descriptor_match w: the RL reward of each draw gains w * DescriptorMatch's reward of its
    descriptor values (0 for an invalid draw), the log records each column's distance, and
    training with it resumes exactly (the running counts are in the checkpoint)."""
    import molgan.train as train_module
    from molgan.descriptor_match import descriptor_values

    with pytest.raises(ValueError, match="descriptor_match"):
        Trainer(config(1, descriptor_match=0.5, diversity_rl=0.0), qm9, tmp_path / "bad")
    with pytest.raises(ValueError, match="descriptors"):
        Trainer(config(1, descriptor_match=0.5, match_descriptors="ringz"), qm9,
                tmp_path / "bad")
    trainer = Trainer(config(1, descriptor_match=0.5), qm9, tmp_path / "run")
    with torch.no_grad():
        fake = trainer._fake_batch(trainer._latents(), trainer.generator)
    drawn = trainer._draw(fake)
    seen = {}
    monkeypatch.setattr(train_module, "policy_gradient",
                        lambda fake, x, adj, rewards, *_: seen.setdefault("r", rewards).sum())
    counts = torch.zeros(16, dtype=torch.long)
    before = trainer.descriptor_match.counts.clone()
    trainer._diversity_rl_term(fake, drawn, counts)
    with_match = seen.pop("r")
    values = descriptor_values(drawn[0].numpy(), drawn[1].numpy(), trainer.vocab,
                               trainer.match_names)
    trainer.descriptor_match.counts = before  # the same counts again
    expected = trainer.descriptor_match.push_and_reward(values)
    trainer.config.train.descriptor_match = 0.0
    trainer._diversity_rl_term(fake, drawn, counts)
    torch.testing.assert_close(with_match - seen["r"], 0.5 * expected)
    assert (expected[torch.from_numpy(values[:, 0]) < 0] == 0).all()
    monkeypatch.undo()
    straight, _ = train_straight_and_resumed(
        lambda steps: config(steps, descriptor_match=0.5, match_descriptors="rings,charges"),
        6, qm9, tmp_path / "resume")
    records = [json.loads(line) for line in
               (tmp_path / "resume" / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["match_distance"].keys() == {"rings", "charges"} for r in records)
    assert all(0 <= d <= 1 for r in records for d in r["match_distance"].values())
    assert straight.descriptor_match.counts.sum() > 0
