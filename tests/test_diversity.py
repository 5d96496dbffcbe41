"""The diversity RL term (molgan.diversity): draws, repeat memory, rewards, critic batches."""

import json

import pytest
import torch

from molgan.config import RunConfig, TrainConfig
from molgan.diversity import (RepeatMemory, diversity_rewards, graph_keys, repeat_weights,
                              sibling_repeats, standardized_among)
from molgan.generator import GeneratorConfig, draw_graph
from molgan.graph import DenseGraph, one_hot_graph
from molgan.train import Trainer
from tests.test_train import config, train_straight_and_resumed


def fakes(trainer):
    with torch.no_grad():
        return trainer._fake_batch(trainer._latents(), trainer.generator)


def test_graph_keys_tell_graphs_apart_and_the_memory_counts_within_its_window():
    x = torch.tensor([[1, 2, 0], [1, 2, 0], [2, 1, 0]], dtype=torch.uint8)
    adj = torch.zeros(3, 3, 3, dtype=torch.uint8)
    adj[:, 0, 1] = adj[:, 1, 0] = 1
    keys = graph_keys(x, adj)
    assert keys[0] == keys[1] and keys[0] != keys[2] and (keys >= 0).all()
    memory = RepeatMemory(window=4)
    assert memory.push_and_count(keys).tolist() == [2, 2, 1]
    assert memory.push_and_count(keys[2:]).tolist() == [2]
    assert memory.push_and_count(keys[2:]).tolist() == [3]  # the first key left the window
    assert memory.count(keys[:1]).tolist() == [1]
    restored = RepeatMemory(window=4)
    restored.load_state(memory.state())
    assert restored.count(keys).tolist() == memory.count(keys).tolist()


def test_sibling_repeats_count_the_same_key_among_the_other_draws_of_each_latent():
    # 3 draws from each of 2 latents: latent 0 drew 5, 5, 7; latent 1 drew 9, 9, 9
    keys = torch.tensor([5, 9, 5, 9, 7, 9])
    assert sibling_repeats(keys, 3).tolist() == [1, 2, 1, 2, 0, 2]
    assert sibling_repeats(keys, 1).tolist() == [0] * 6
    with pytest.raises(ValueError, match="blocks"):
        sibling_repeats(keys, 4)

def test_rewards_are_validity_minus_the_log_excess_of_repeats():
    valid = torch.tensor([1.0, 1.0, 0.0, 1.0])
    counts = torch.tensor([1, 2, 8, 8])
    weights = repeat_weights(counts, threshold=2.0)
    assert weights.tolist() == pytest.approx([0.0, 0.0, 1.3862944, 1.3862944])
    assert diversity_rewards(valid, counts, 2.0).tolist() == pytest.approx(
        [1.0, 1.0, -1.3862944, 1 - 1.3862944])


def test_standardized_among_uses_only_the_flagged_scores():
    scores = torch.tensor([1.0, 2.0, 3.0, 10.0])
    among = torch.tensor([True, True, True, False])
    out = standardized_among(scores, among)
    assert out[:3].tolist() == pytest.approx([-1.0, 0.0, 1.0]) and out[3] == 0
    assert not standardized_among(scores, torch.tensor([True, False, False, False])).any()


def test_draws_are_taken_at_the_rl_temperature_from_the_trainers_noise(train_data, tmp_path):
    run = RunConfig(config(1, rl_temperature=2.0).train, GeneratorConfig(valence_draw=False))
    trainer = Trainer(run, train_data, tmp_path)
    fake = fakes(trainer)
    log_probs = DenseGraph(fake.x.clamp(min=1e-9).log(), fake.adj.clamp(min=1e-9).log())
    noise = trainer.noise.get_state()
    drawn = trainer.diversity.draw(fake)
    trainer.noise.set_state(noise)
    hot = draw_graph(log_probs, 2.0, generator=trainer.noise)
    trainer.noise.set_state(noise)
    cold = draw_graph(log_probs, 1.0, generator=trainer.noise)
    assert all(torch.equal(a, b) for a, b in zip(drawn, hot))
    assert not torch.equal(drawn[1], cold[1])


def test_valence_draws_respect_every_valence(train_data, tmp_path):
    from molgan.chem import max_valences

    trainer = Trainer(config(1), train_data, tmp_path)
    x_idx, adj_idx = trainer.diversity.draw(fakes(trainer))
    cap = torch.tensor(max_valences(trainer.vocab))
    valence = (adj_idx.long() * (x_idx > 0)[:, None, :]).sum(-1)
    assert (valence <= cap[x_idx.long()]).all()


def test_free_draws_are_the_last_ones_and_drawn_without_the_valence_constraint(train_data,
                                                                             tmp_path):
    from molgan.chem import max_valences

    trainer = Trainer(config(1), train_data, tmp_path)
    fake = fakes(trainer)
    # every pair leaning to the highest bond order: unconstrained draws overfill valences
    leaning = fake.adj.clone()
    leaning[..., -1] += 10.0
    fake = DenseGraph(fake.x, leaning / leaning.sum(-1, keepdim=True))
    half = fake.x.shape[0] // 2
    noise = trainer.noise.get_state()
    x_idx, adj_idx = trainer.diversity.draw(fake, free=half)
    cap = torch.tensor(max_valences(trainer.vocab))
    excess = (adj_idx.long() * (x_idx > 0)[:, None, :]).sum(-1) > cap[x_idx.long()]
    assert not excess[:-half].any() and excess[-half:].any(1).all()
    trainer.noise.set_state(noise)
    within = trainer.diversity.draw(DenseGraph(fake.x[:-half], fake.adj[:-half]))
    assert torch.equal(within[1], adj_idx[:-half])  # the noise goes to the held draws first


def test_critic_batches_get_draws_in_front_and_relaxed_fakes_behind(train_data, tmp_path):
    trainer = Trainer(config(1, critic_draws=0.5), train_data, tmp_path)
    fake = fakes(trainer)
    noise = trainer.noise.get_state()
    mixed = trainer.diversity.critic_batch(fake)
    trainer.noise.set_state(noise)
    expected = one_hot_graph(*trainer.diversity.draw(DenseGraph(fake.x[:8], fake.adj[:8])),
                             fake.x.shape[-1], fake.adj.shape[-1])
    assert torch.equal(mixed.x[:8], expected.x) and torch.equal(mixed.adj[:8], expected.adj)
    assert torch.equal(mixed.x[8:], fake.x[8:]) and torch.equal(mixed.adj[8:], fake.adj[8:])
    trainer.config.train.diversity.critic_draws = 0.0
    assert trainer.diversity.critic_batch(fake) is fake


def test_realism_adds_the_critics_standardized_score_among_valid_draws(train_data, tmp_path):
    trainer = Trainer(config(1, draw_realism=2.0, motif_reward=0.0), train_data, tmp_path)
    drawn = trainer.diversity.draw(fakes(trainer))
    counts = torch.ones(16, dtype=torch.long)
    with_realism = trainer.diversity.rewards(drawn, counts)
    trainer.config.train.diversity.draw_realism = 0.0
    plain = trainer.diversity.rewards(drawn, counts)
    valid = plain > 0  # count 1 under threshold 1: reward = validity
    with torch.no_grad():
        scores = trainer.critic(*one_hot_graph(*drawn, trainer.vocab.num_atom_types,
                                               trainer.vocab.num_bond_types))
    torch.testing.assert_close(with_realism - plain, 2.0 * standardized_among(scores, valid))


def test_realism_in_blocks_scores_each_block_of_draws_as_its_own_batch(train_data, tmp_path):
    trainer = Trainer(config(1, draw_realism=1.0, rl_draws=4, realism_blocks=True,
                             motif_reward=0.0), train_data, tmp_path)
    fake = fakes(trainer)
    drawn = trainer.diversity.draw(DenseGraph(fake.x.repeat(4, 1, 1),
                                              fake.adj.repeat(4, 1, 1, 1)))
    counts = torch.ones(64, dtype=torch.long)
    with_realism = trainer.diversity.rewards(drawn, counts)
    trainer.config.train.diversity.draw_realism = 0.0
    plain = trainer.diversity.rewards(drawn, counts)
    x, adj = one_hot_graph(*drawn, trainer.vocab.num_atom_types, trainer.vocab.num_bond_types)
    with torch.no_grad():
        by_block = torch.cat([trainer.critic(x[k * 16:(k + 1) * 16], adj[k * 16:(k + 1) * 16])
                              for k in range(4)])
        at_once = trainer.critic(x, adj)
    assert not torch.allclose(by_block, at_once)  # batch features see other batch-mates
    torch.testing.assert_close(with_realism - plain, standardized_among(by_block, plain > 0))


def test_k_draws_per_fake_reach_the_policy_gradient_and_the_memory(train_data, tmp_path, monkeypatch):
    import molgan.diversity as diversity_module

    seen = []
    original = diversity_module.policy_gradient

    def recording(*args):
        seen.append(args)
        return original(*args)

    monkeypatch.setattr(diversity_module, "policy_gradient", recording)
    trainer = Trainer(config(2, rl_draws=3, critic_draws=0.0), train_data, tmp_path)
    trainer.fit()
    fake, x_idx, adj_idx, rewards = seen[0][:4]
    assert seen[0][6] == 3 and x_idx.shape[0] == rewards.shape[0] == 48
    blocks = fake.x.view(3, 16, *fake.x.shape[1:])
    assert torch.equal(blocks[0], blocks[1]) and torch.equal(blocks[0], blocks[2])
    assert int((trainer.diversity.memory.keys != -1).sum()) == 2 * 3 * 16


@pytest.mark.parametrize("credit", ["within", "across"])
def test_credit_across_latents_takes_the_batch_baseline_and_other_latents_repeats(
        credit, train_data, tmp_path, monkeypatch):
    """``rl_credit="across"``: the policy gradient gets one block (the batch mean as baseline)
    and a draw's count leaves out its own latent's identical draws; ``within`` keeps the
    leave-one-out blocks and counts every draw."""
    import molgan.diversity as diversity_module

    seen = []
    monkeypatch.setattr(diversity_module, "policy_gradient",
                        lambda *args: seen.append(args) or torch.zeros(()))
    monkeypatch.setattr(diversity_module.DiversityRL, "rewards",
                        lambda self, drawn, counts: seen.append(counts) or counts.float())
    original_draw = diversity_module.DiversityRL.draw

    def second_draw_repeats_the_first(self, fake, free=0):
        x_idx, adj_idx = original_draw(self, fake, free)
        b = x_idx.shape[0] // 3
        x_idx[b:2 * b], adj_idx[b:2 * b] = x_idx[:b], adj_idx[:b]
        return x_idx, adj_idx

    monkeypatch.setattr(diversity_module.DiversityRL, "draw", second_draw_repeats_the_first)
    trainer = Trainer(config(1, rl_draws=3, critic_draws=0.0, rl_credit=credit), train_data,
                      tmp_path)
    trainer.fit()
    counts, (_, x_idx, adj_idx, _, *_, draws, _) = seen[0], seen[1]
    keys = graph_keys(x_idx, adj_idx)
    same = (keys.unsqueeze(0) == keys.unsqueeze(1)).sum(1)  # every draw, itself included
    siblings = (keys.view(3, -1).unsqueeze(0) == keys.view(3, -1).unsqueeze(1)).sum(0) - 1
    assert (siblings[:2] >= 1).all()  # every latent drew its first graph twice
    expected = same - siblings.reshape(-1) if credit == "across" else same
    assert counts.tolist() == expected.tolist()
    assert draws == (1 if credit == "across" else 3)


def test_training_with_the_term_logs_it_and_resumes_exactly(train_data, tmp_path):
    def run(steps):
        return config(steps, repeat_window=64, critic_draws=0.25, draw_realism=1.0,
                      rl_draws=2, log_every=3)

    straight, resumed = train_straight_and_resumed(run, 6, train_data, tmp_path)
    assert torch.equal(straight.diversity.memory.keys, resumed.diversity.memory.keys)
    logged = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl")
              .read_text().splitlines()]
    assert all(0 <= r["repeated"] <= 1 and 0 <= r["drawn_valid"] <= 1 for r in logged)
    assert logged[-1]["rdkit_seconds"] > 0


@pytest.mark.parametrize("field, value", [("rl_draws", 0), ("rl_temperature", 0.0),
                                          ("critic_draws", 1.5), ("repeat_threshold", 0.5),
                                          ("free_draws", 5), ("rl_credit", "latent")])
def test_invalid_settings_are_refused_with_their_name(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig.from_flat({field: value})
