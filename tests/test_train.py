import json
import os
import signal

import pytest
import torch

from molgan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from molgan.cli import main
from molgan.config import RunConfig, TrainConfig
from molgan.train import Trainer, TrainingDiverged
from tests.conftest import QM9_FIXTURE


def config(steps, **kwargs):
    base = dict(steps=steps, batch_size=16, n_critic=2, log_every=5, eval_every=1000,
                eval_samples=50, ckpt_every=1000, seed=3)
    base.update(kwargs)
    return RunConfig(TrainConfig.from_flat(base))


def parameters(trainer):
    return {**{f"g.{k}": v for k, v in trainer.generator.state_dict().items()},
            **{f"d.{k}": v for k, v in trainer.critic.state_dict().items()}}


def assert_trained_alike(a, b, run, steps, rtol, atol):
    """Weights of two trainings that may differ only by float rounding. Adam amplifies
    rounding where a gradient is near 0 (``m / sqrt(v)`` is then about +-1 either way), so
    such an element can move up to the learning rate per update the other way: at least
    99.9% of the elements of each tensor must agree to ``rtol`` / ``atol``, and every element
    to twice the faster network's rate per update."""
    updates = steps * run.train.optim.n_critic
    fastest = max(run.train.optim.generator_lr, run.train.optim.critic_lr)
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


def test_train_20_resume_20_equals_train_40(train_data, tmp_path):
    train_straight_and_resumed(config, 40, train_data, tmp_path)
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


def test_checkpoints_load_with_weights_only(train_data, tmp_path):
    trainer = Trainer(config(2), train_data, tmp_path)
    trainer.fit()
    bundle = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert bundle["step"] == 2 and bundle["vocab"]["max_atoms"] == 9


def test_sigterm_saves_a_checkpoint_and_stops_cleanly(train_data, tmp_path):
    trainer = Trainer(config(50), train_data, tmp_path)

    def on_step(step, postfix):
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    result = trainer.fit(on_step)
    assert result.status == "interrupted" and result.step == 7
    assert load_checkpoint(tmp_path)["step"] == 7
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(train_data, tmp_path):
    trainer = Trainer(config(30, ckpt_every=5), train_data, tmp_path)

    def on_step(step, postfix):
        if step == 10:  # poison the critic after the step-10 checkpoint
            with torch.no_grad():
                trainer.critic.mlp[-1].bias.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="non-finite"):
        trainer.fit(on_step)
    assert load_checkpoint(tmp_path)["step"] == 10


@pytest.mark.parametrize("data", [str(QM9_FIXTURE), pytest.param("qm9", marks=pytest.mark.slow)])
def test_cli_train_writes_the_run_files(cache_dir, tmp_path, capsys, data):
    out = tmp_path / "run"
    code = main(["train", "--data", data, "--steps", "50", "--batch-size", "16",
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
    assert main(["train", "--data", data, "--steps", "1", "--out", str(out),
                 "--cache-dir", str(cache_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_cli_resume_rejects_model_changes_and_truncated_checkpoints(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(QM9_FIXTURE), "--steps", "2", "--batch-size", "8",
            "--out", str(out), "--cache-dir", str(cache_dir)]
    assert main(args) == 0
    assert main(args + ["--resume", "--z-dim", "64"]) == 2
    assert "cannot change z_dim" in capsys.readouterr().err
    ckpt = out / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert main(args + ["--resume", "--steps", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "truncated or corrupt" in err


def test_config_file_sets_defaults_and_flags_override(cache_dir, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[train]\nsteps = 3\nbatch_size = 8\n[generator]\nz_dim = 12\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--data", str(QM9_FIXTURE), "--steps", "2",
                 "--out", str(out),
                 "--cache-dir", str(cache_dir)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["steps"] == 2 and saved["train"]["batch_size"] == 8
    assert saved["generator"]["z_dim"] == 12


def test_wall_clock_budget_stops_with_a_checkpoint(train_data, tmp_path):
    trainer = Trainer(config(10_000, max_seconds=1.0), train_data, tmp_path)
    result = trainer.fit()
    assert result.status == "out_of_time" and 0 < result.step < 10_000
    assert load_checkpoint(tmp_path)["step"] == result.step


def test_adam_implementations_give_the_same_training(train_data, tmp_path):
    results = []
    for impl in ("loop", "foreach", "fused"):
        trainer = Trainer(config(3), train_data, tmp_path / impl, adam=impl)
        trainer.fit()
        results.append(parameters(trainer))
    for other in results[1:]:
        assert_trained_alike(results[0], other, config(3), 3, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_keeps_losses_penalty_and_gradients_close_to_fp32(train_data, tmp_path):
    trainers = {p: Trainer(config(1, batch_size=64, precision=p), train_data, tmp_path / p)
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


def test_feature_penalty_adds_its_term_to_the_critic_loss_only(train_data, tmp_path):
    """Same seed, same batch: feature_penalty mu adds mu * E[max(0, ||dD/df|| - 1)^2] (>= 0)
    to the critic's loss; the estimate, penalty and scores are shared. On a critic without
    batch features it has nothing to act on: the step is the same as without it. A negative
    weight is refused."""
    from molgan.critic import CriticConfig

    trainers = {mu: Trainer(config(1, feature_penalty=mu, data_penalty=0.0), train_data,
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
                         train_data, tmp_path / f"plain{mu}") for mu in (0.0, 1e4)}
    steps = {mu: t.critic_step() for mu, t in plain.items()}
    assert steps[1e4].feature_penalty.item() == 0
    assert steps[1e4].loss.item() == steps[0.0].loss.item()
    with pytest.raises(ValueError, match="feature_penalty must be >= 0"):
        Trainer(config(1, feature_penalty=-1.0), train_data, tmp_path / "negative")


def test_data_penalty_adds_its_term_and_is_logged(train_data, tmp_path):
    """Same seed, same batch: data_penalty nu adds nu * E[max(0, ||grad_G D|| - 1)^2] over
    the real and fake graphs; the estimate, penalty and scores are shared; fit logs data_gp."""
    trainers = {nu: Trainer(config(1, data_penalty=nu, feature_penalty=0.0), train_data,
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
    logged = Trainer(config(5, data_penalty=1.0, feature_penalty=0.0, log_every=5), train_data,
                     tmp_path / "logged")
    logged.fit()
    record = json.loads((tmp_path / "logged" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["data_gp"] >= 0 and "feature_gp" not in record


def test_kept_checkpoints_hold_the_run_as_it_was_at_their_step(train_data, tmp_path):
    from molgan.sample import Sampler

    Trainer(config(6, keep_every=2, ckpt_every=1000), train_data, tmp_path / "long").fit()
    kept = sorted(p.name for p in (tmp_path / "long").glob("ckpt-*.pt"))
    assert kept == ["ckpt-0000002.pt", "ckpt-0000004.pt", "ckpt-0000006.pt"]
    Trainer(config(4), train_data, tmp_path / "short").fit()
    at_four, short = (load_checkpoint(tmp_path / "long" / "ckpt-0000004.pt"),
                      load_checkpoint(tmp_path / "short"))
    assert at_four["step"] == short["step"] == 4
    for network in ("generator", "critic"):
        for key, value in short[network].items():
            torch.testing.assert_close(at_four[network][key], value, rtol=0, atol=0, msg=key)
    first = Sampler.from_checkpoint(tmp_path / "long" / "ckpt-0000004.pt").sample(20, seed=0)
    assert first.smiles == Sampler.from_checkpoint(tmp_path / "short").sample(20, seed=0).smiles


def test_keep_every_can_be_raised_on_resume(cache_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(QM9_FIXTURE), "--batch-size", "16", "--eval-every", "1000",
            "--out", str(out), "--cache-dir", str(cache_dir), "--threads", "1"]
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "4", "--keep-every", "3", "--resume"]) == 0
    assert sorted(p.name for p in out.glob("ckpt-*.pt")) == ["ckpt-0000003.pt"]


def test_negative_keep_every_is_refused(train_data, tmp_path):
    with pytest.raises(ValueError, match="keep_every must be 0"):
        Trainer(config(1, keep_every=-1), train_data, tmp_path)


@pytest.mark.parametrize("name", ["log_every", "eval_every", "ckpt_every"])
def test_intervals_below_one_step_are_refused_with_their_name(train_data, tmp_path, name):
    with pytest.raises(ValueError, match=f"{name} must be at least 1"):
        Trainer(config(1, **{name: 0}), train_data, tmp_path)


def _inductor_compiles() -> bool:
    """Whether torch.compile's default backend builds code here (it needs a C++ compiler)."""
    try:
        torch.compile(lambda t: t * 2 + 1)(torch.ones(3))
    except Exception:  # noqa: BLE001 - any backend failure means: cannot test compile here
        return False
    return True


def test_compiled_networks_train_like_the_plain_ones(train_data, tmp_path):
    if not _inductor_compiles():
        pytest.skip("torch.compile's inductor backend cannot build code on this machine")
    trainers = {c: Trainer(config(1, compile=c), train_data, tmp_path / str(c)) for c in (False, True)}
    for trainer in trainers.values():
        trainer.prepare_networks()
    # the whole critic loss (penalties included) is one compiled function
    assert trainers[True]._critic_loss != trainers[True]._critic_objective
    assert trainers[True].generator_ddp is not trainers[True].generator
    for _ in range(2):  # the second steps run the compiled code with updated weights
        parts = {c: [v.item() for v in t.critic_step()] for c, t in trainers.items()}
        assert parts[True] == pytest.approx(parts[False], rel=1e-4, abs=1e-6)
        losses = {c: t.generator_step().item() for c, t in trainers.items()}
        assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-6)
    assert_trained_alike(parameters(trainers[False]), parameters(trainers[True]), config(1), 2,
                         rtol=1e-4, atol=1e-5)


def test_unknown_precision_is_rejected(train_data, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        Trainer(config(1, precision="fp8"), train_data, tmp_path)


def test_minibatch_distance_run_ships_a_batch_independent_critic(train_data, tmp_path):
    from molgan.critic import Critic, CriticConfig

    run = RunConfig(config(2).train, critic=CriticConfig(minibatch_distance=True,
                                                         reference_size=32))
    trainer = Trainer(run, train_data, tmp_path)
    assert trainer.critic.reference_x.shape == (32, 9) and trainer.critic.reference_x.any()
    trainer.fit()
    critic = Critic.from_checkpoint(tmp_path)
    torch.testing.assert_close(critic.reference_adj, trainer.critic.reference_adj)
    smiles = ["CCO", "c1ccccc1", "CC#N", "O=C1CCCC1"]
    together = critic.score(smiles)
    alone = torch.cat([critic.score([s]) for s in smiles])
    torch.testing.assert_close(alone, together)


def test_a_models_sample_temperature_is_its_default(train_data, tmp_path):
    from molgan.sample import Sampler

    trainer = Trainer(config(1, decode="sample", sample_temperature=0.5), train_data, tmp_path / "run")
    trainer.save()
    assert Sampler.from_checkpoint(tmp_path / "run").temperature == 0.5
    assert Sampler.from_checkpoint(tmp_path / "run", temperature=2.0).temperature == 2.0
    argmax = Sampler.from_checkpoint(tmp_path / "run", decode="argmax")
    assert argmax.decode == "argmax" and argmax.temperature == 1.0
    with pytest.raises(ValueError, match="positive"):
        Trainer(config(1, sample_temperature=0.0), train_data, tmp_path / "bad")




def test_generator_ema_averages_the_weights_resumes_and_is_what_samples_use(train_data, tmp_path):
    """The average follows beta_t = min(beta, (1 + t) / (10 + t)) step by step, training is
    unchanged by it, it resumes exactly, is exported, and Sampler loads it by default (the
    last weights with weights='live', or when a run kept no average)."""
    from molgan.checkpoint import export_model
    from molgan.sample import Sampler

    beta = 0.2  # the cap applies from step 2 on: (1 + 2) / (10 + 2) > 0.2
    trainer = Trainer(config(4, generator_ema=beta), train_data, tmp_path / "ema")
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
    plain = Trainer(config(4, generator_ema=0.0), train_data, tmp_path / "plain")
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
        Trainer(config(1, generator_ema=1.0), train_data, tmp_path / "bad")

    straight, resumed = train_straight_and_resumed(
        lambda steps: config(steps, generator_ema=0.9), 6, train_data, tmp_path / "resume")
    for x, y in zip(weights(straight.generator_average), weights(resumed.generator_average)):
        assert torch.equal(x, y)



def test_a_torn_last_metrics_line_does_not_stop_resume(train_data, tmp_path):
    Trainer(config(10), train_data, tmp_path).fit()
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 1')  # a kill in mid-write
    resumed = Trainer(config(15), train_data, tmp_path)
    resumed.resume()
    resumed.fit()
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == [5, 10, 15]


def test_a_non_finite_loss_before_any_checkpoint_says_there_is_none(train_data, tmp_path):
    trainer = Trainer(config(30, log_every=1), train_data, tmp_path)

    def on_step(step, postfix):
        if step == 2:
            with torch.no_grad():
                trainer.critic.mlp[-1].bias.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="no checkpoint was written"):
        trainer.fit(on_step)


def test_lazy_steepness_penalties_come_every_kth_update_weighted_k_times(train_data, tmp_path,
                                                                         monkeypatch):
    import molgan.train

    trainer = Trainer(config(10, steepness_every=3), train_data, tmp_path)
    weights = []
    real_loss = molgan.train.critic_loss

    def recording(*args, **kwargs):
        weights.append((kwargs["data_penalty"], kwargs["feature_penalty"]))
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(molgan.train, "critic_loss", recording)
    for _ in range(6):
        trainer.critic_step()
    assert weights == [(30.0, 30.0), (0.0, 0.0), (0.0, 0.0)] * 2
    # a steep update's loss is the plain loss plus k times the weighted penalties
    real = trainer._real_batch()
    with torch.no_grad():
        fake = trainer._fake_batch(trainer._latents(), trainer.generator)
        for parameter in trainer.critic.parameters():  # a steep critic: norms above 1
            parameter.mul_(4)
    epsilon = torch.full((real.x.shape[0],), 0.3)
    lazy = trainer._critic_objective(real, fake, epsilon, steep=True)
    plain = trainer._critic_objective(real, fake, epsilon, steep=False)
    assert float(lazy.data_penalty) > 0 and float(plain.data_penalty) == 0
    penalties = trainer.config.train.penalties
    expected = plain.loss + 3 * (penalties.feature_penalty * lazy.feature_penalty
                                 + penalties.data_penalty * lazy.data_penalty)
    torch.testing.assert_close(lazy.loss, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="steepness_every"):
        config(10, steepness_every=0)


def test_a_closed_walk_critic_trains_saves_and_scores_molecules(train_data, tmp_path):
    from molgan.critic import Critic, CriticConfig

    run = RunConfig(config(3).train, critic=CriticConfig(critic_walks=6))
    trainer = Trainer(run, train_data, tmp_path)
    trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.critic.parameters())
    critic = Critic.from_checkpoint(tmp_path)
    assert critic.config.critic_walks == 6
    for key, value in trainer.critic.state_dict().items():
        torch.testing.assert_close(critic.state_dict()[key], value, msg=key)
    scores = critic.score(["c1ccccc1", "C=CC=CC=C", "C1CC1C1CC1"])
    assert torch.isfinite(scores).all() and scores.unique().numel() == 3


def test_a_transformer_generator_trains_resumes_and_samples_from_its_checkpoint(train_data,
                                                                                  tmp_path):
    from molgan.generator import GeneratorConfig
    from molgan.sample import Sampler

    def run(steps):
        return RunConfig(config(steps).train,
                         generator=GeneratorConfig(gen_transformer=2, gen_node_dim=32))

    straight, _ = train_straight_and_resumed(run, 6, train_data, tmp_path)
    assert straight.generator.atoms is not None
    sampler = Sampler.from_checkpoint(tmp_path / "straight")
    assert sampler.generator.config.gen_transformer == 2
    first = sampler.sample(40, seed=5).smiles
    assert first == Sampler.from_checkpoint(tmp_path / "split").sample(40, seed=5).smiles
    assert len(first) == 40


@pytest.mark.parametrize("form", ["mean", "drawn"])
def test_the_valence_excess_form_picks_the_generators_penalty(train_data, tmp_path, monkeypatch,
                                                              form):
    """``valence_excess`` chooses which excess the generator's loss adds, on its relaxed fakes
    and the vocabulary's valences; an unknown form is refused with the field's name."""
    import molgan.train

    calls = {"mean": [], "drawn": []}
    for name, attribute in (("mean", "valence_excess"), ("drawn", "drawn_valence_excess")):
        original = getattr(molgan.train, attribute)

        def record(fake, max_valence, _name=name, _original=original):
            calls[_name].append((tuple(fake.adj.shape), max_valence.tolist()))
            return _original(fake, max_valence)

        monkeypatch.setattr(molgan.train, attribute, record)
    trainer = Trainer(config(2, valence_excess=form), train_data, tmp_path / form)
    trainer.fit()
    other = "mean" if form == "drawn" else "drawn"
    assert len(calls[form]) == 2 and not calls[other]
    shape, valences = calls[form][0]
    assert shape[0] == 16 and valences[0] == 0 and len(valences) == len(trainer.vocab.atoms) + 1
    with pytest.raises(ValueError, match="valence_excess must be one of"):
        config(1, valence_excess="sampled")


@pytest.mark.parametrize("temperature", [1.0, 1.5])
def test_the_penalties_on_a_draw_take_the_law_at_the_drawn_temperature(
        train_data, tmp_path, monkeypatch, temperature):
    """With ``drawn_temperature`` T, the drawn valence excess, the lone-atom and the collision
    penalties are taken on softmax(logits / T) (one tempering per generator step, shared by
    the three); at 1 on the relaxed fakes themselves, untempered. T <= 0, or T != 1 without
    a penalty on a draw, is refused with the field's name."""
    import molgan.train
    from molgan.generator import temper

    original_excess = molgan.train.drawn_valence_excess
    original_lone = molgan.train.drawn_lone_atoms
    tempered, seen = [], []

    def record_temper(probs, t):
        tempered.append((t, temper(probs, t)))
        return tempered[-1][1]

    def record_excess(law, valences):
        seen.append(law)
        return original_excess(law, valences)

    def record_lone(law):
        seen.append(law)
        return original_lone(law)

    def record_collisions(law):
        seen.append(law)
        return original_collisions(law)

    original_collisions = molgan.train.drawn_collisions
    monkeypatch.setattr(molgan.train, "temper", record_temper)
    monkeypatch.setattr(molgan.train, "drawn_valence_excess", record_excess)
    monkeypatch.setattr(molgan.train, "drawn_lone_atoms", record_lone)
    monkeypatch.setattr(molgan.train, "drawn_collisions", record_collisions)
    Trainer(config(2, valence_excess="drawn", lone_atom_penalty=1.0, collision_penalty=0.1,
                   drawn_temperature=temperature), train_data, tmp_path / str(temperature)).fit()
    assert len(seen) == 6
    if temperature == 1.0:
        assert not tempered
        assert all(law is seen[3 * (i // 3)] for i, law in enumerate(seen))
    else:
        assert [t for t, _ in tempered] == [temperature, temperature]
        assert all(law is tempered[i // 3][1] for i, law in enumerate(seen))
    with pytest.raises(ValueError, match="drawn_temperature must be positive"):
        config(1, valence_excess="drawn", drawn_temperature=0.0)
    with pytest.raises(ValueError, match="drawn_temperature applies only"):
        config(1, drawn_temperature=1.5)


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_the_lone_atom_penalty_enters_the_generators_loss_only_when_weighted(
        train_data, tmp_path, monkeypatch, weight):
    """``lone_atom_penalty > 0`` adds the expected lone atoms of the relaxed fakes to every
    generator step; at 0 the term is never computed."""
    import molgan.train

    calls = []
    original = molgan.train.drawn_lone_atoms

    def record(fake):
        calls.append(tuple(fake.x.shape))
        return original(fake)

    monkeypatch.setattr(molgan.train, "drawn_lone_atoms", record)
    Trainer(config(2, lone_atom_penalty=weight), train_data, tmp_path / str(weight)).fit()
    assert len(calls) == (2 if weight else 0)
    if weight:
        assert calls[0][0] == 16


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_the_collision_penalty_enters_the_generators_loss_and_the_log_only_when_weighted(
        train_data, tmp_path, monkeypatch, weight):
    """``collision_penalty > 0`` adds the log chance that two latents draw one labelled graph
    to every generator step and logs its unweighted value; at 0 it is neither computed nor
    logged."""
    import molgan.train

    calls = []
    original = molgan.train.drawn_collisions

    def record(fake):
        calls.append(original(fake))
        return calls[-1]

    monkeypatch.setattr(molgan.train, "drawn_collisions", record)
    out = tmp_path / str(weight)
    Trainer(config(2, collision_penalty=weight, log_every=1), train_data, out).fit()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(calls) == (2 if weight else 0)
    if weight:
        assert [r["collision"] for r in records] == [round(c.item(), 4) for c in calls]
        assert all(c.item() <= 0 for c in calls)
    else:
        assert all("collision" not in r for r in records)
