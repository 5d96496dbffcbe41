"""MolGAN's reward function, reward network and RL term."""

import json

import numpy as np
import pytest
import torch

from molgan.loss import combined_generator_loss
from molgan.reward import RewardFunction, normalize, parse_rewards
from molgan.reward_net import RewardNet
from molgan.config import RunConfig, TrainConfig
from molgan.train import Trainer

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def test_invalid_molecules_get_zero_for_every_reward():
    for name in ("qed", "logp", "sa", "validity", "uniqueness"):
        assert RewardFunction([name])([None, ""]).tolist() == [0.0, 0.0]


def test_qed_reward_matches_published_values():
    # Bickerton et al. 2012 list aspirin's QED as 0.55; benzene's RDKit QED is 0.443
    reward = RewardFunction(["qed"])([ASPIRIN, "c1ccccc1"])
    assert reward == pytest.approx([0.550, 0.443], abs=0.001)


def test_logp_and_sa_are_mapped_to_unit_interval_as_in_molgan():
    assert normalize("logp", np.array([-2.12178879609, 6.0429063424, -5.0, 9.0])).tolist() == \
        pytest.approx([0.0, 1.0, 0.0, 1.0])
    assert normalize("sa", np.array([5.0, 1.5, 3.25, 9.0])).tolist() == \
        pytest.approx([0.0, 1.0, 0.5, 0.0])


def test_uniqueness_reward_is_one_over_the_count_in_the_batch():
    assert RewardFunction(["uniqueness"])(["CCO", "CCO", "C", None]).tolist() == \
        [0.5, 0.5, 1.0, 0.0]


def test_combined_reward_is_the_product_of_components():
    both = RewardFunction(["qed", "validity", "uniqueness"])([ASPIRIN, ASPIRIN, "C"])
    qed = RewardFunction(["qed"])([ASPIRIN, ASPIRIN, "C"])
    assert both == pytest.approx(qed * np.array([0.5, 0.5, 1.0]))


def test_unknown_reward_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown reward"):
        parse_rewards("qed,druglikeness")
    assert parse_rewards(" qed, sa ") == ("qed", "sa")


def test_rl_term_lowers_the_loss_where_the_reward_network_is_higher():
    wgan = torch.tensor(-0.7, requires_grad=True)
    predicted = torch.tensor([0.2, 0.4, 0.9], requires_grad=True)
    for lam in (0.0, 0.5):
        wgan.grad = predicted.grad = None
        combined_generator_loss(wgan, predicted, lam).backward()
        assert (predicted.grad < 0).all()
        assert wgan.grad == pytest.approx(lam)
    # alpha gives the RL term the WGAN term's magnitude
    loss = combined_generator_loss(torch.tensor(-0.7), torch.tensor([0.2, 0.4]), 0.0)
    assert loss.item() == pytest.approx(-0.7)


def reward_config(steps, **kwargs):
    base = dict(data="", steps=steps, batch_size=8, n_critic=2, log_every=5, eval_every=1000,
                eval_samples=20, ckpt_every=1000, seed=5, reward="qed,validity",
                lambda_rl=0.5, rl_warmup=3)
    base.update(kwargs)
    return RunConfig(TrainConfig.from_flat(base))


@pytest.fixture()
def small_data(small_smi, cache_dir):
    from molgan.dataset import load_dataset

    return load_dataset(str(small_smi), cache_dir=cache_dir)


def test_reward_network_gradient_reaches_the_generator(small_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGAN_CACHE", str(tmp_path / "cache"))
    trainer = Trainer(reward_config(1, lambda_rl=0.0, rl_warmup=0), small_data, tmp_path)
    # a critic whose score ignores its input: any generator update comes from the RL term
    with torch.no_grad():
        trainer.critic.mlp[-1].weight.zero_()
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    trainer.generator_step()
    changed = [not torch.equal(a, p) for a, p in zip(before, trainer.generator.parameters())]
    assert all(changed)


def test_resume_with_reward_network_is_exact(small_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGAN_CACHE", str(tmp_path / "cache"))
    straight = Trainer(reward_config(10), small_data, tmp_path / "straight")
    straight.fit()
    Trainer(reward_config(5), small_data, tmp_path / "split").fit()
    resumed = Trainer(reward_config(10), small_data, tmp_path / "split")
    resumed.resume()
    resumed.fit()
    for name, a, b in (("generator", straight.generator, resumed.generator),
                       ("critic", straight.critic, resumed.critic),
                       ("reward_net", straight.property_rl.net, resumed.property_rl.net)):
        a, b = a.state_dict(), b.state_dict()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}.{key}")
    records = [json.loads(line) for line in
               (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["rl"] for r in records] == [True, True]  # steps 5 and 10, warm-up 3
    assert all(0.0 <= r["reward"] <= 1.0 for r in records)


def test_reward_network_loads_from_the_checkpoint_and_scores_smiles(small_data, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("MOLGAN_CACHE", str(tmp_path / "cache"))
    trainer = Trainer(reward_config(4), small_data, tmp_path / "run")
    trainer.fit()
    net = RewardNet.from_checkpoint(tmp_path / "run")
    scores = net.score(["CCO", "c1ccccc1", "[Na+]"])
    assert scores.shape == (3,)
    assert ((scores[:2] > 0) & (scores[:2] < 1)).all() and torch.isnan(scores[2])
    x, adj, _ = net._dense_inputs(["CCO"])
    torch.testing.assert_close(scores[:1], trainer.property_rl.net.eval()(x, adj))


def test_lambda_below_one_without_a_reward_is_an_error():
    with pytest.raises(ValueError, match="needs --reward"):
        TrainConfig.from_flat({"lambda_rl": 0.5})


def test_rewarded_fractions_use_half_the_reward_as_threshold():
    from molgan.reward import rewarded_fractions

    table = {"qed": np.array([0.4, 0.6]), "logp": np.array([0.0, 3.0]),
             "sa": np.array([2.0, 4.0, 3.0, 3.5])}
    assert rewarded_fractions(table, prefix="ref_") == {
        "ref_qed_reward_ge_half": 0.5, "ref_logp_reward_ge_half": 0.5,
        "ref_sa_reward_ge_half": 0.5}


def test_train_command_with_reward_flags_end_to_end(small_smi, tmp_path, monkeypatch):
    from molgan.cli import main

    monkeypatch.setenv("MOLGAN_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "--data", str(small_smi), "--out", str(run), "--steps", "4",
                 "--batch-size", "8", "--n-critic", "1", "--log-every", "2", "--eval-every", "4",
                 "--eval-samples", "20", "--reward", "qed,sa,validity,uniqueness",
                 "--lambda-rl", "0.5", "--rl-warmup", "2"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["rl"] for r in records] == [False, True] and "rdkit_seconds" in records[-1]
    assert RewardNet.from_checkpoint(run).score(["CCO"]).shape == (1,)
