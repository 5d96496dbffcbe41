"""The autoencoder term: encoder shapes, the KL and the loss against cases computed by hand,
training and resuming with it, and an encoder that gives each graph a latent that decodes it."""

import json
import math

import pytest
import torch

from molgan.checkpoint import CheckpointError
from molgan.encoder import GraphEncoder, autoencoder_loss, gaussian_kl, reparameterize
from molgan.generator import Generator, GeneratorConfig
from molgan.graph import DenseGraph, one_hot_graph
from molgan.train import Trainer
from molgan.vocab import Vocab
from tests.test_coverage import two_atom_graph
from tests.test_train import config, train_straight_and_resumed


def test_the_encoder_maps_one_hot_graphs_to_a_mean_and_log_variance_per_latent():
    torch.manual_seed(0)
    encoder = GraphEncoder(num_nodes=5, num_atom_types=4, num_bond_types=3, hidden=(32, 16),
                           z_dim=6)
    upper = torch.randint(0, 3, (7, 5, 5)).triu(1)
    graph = one_hot_graph(torch.randint(0, 4, (7, 5)), upper + upper.transpose(1, 2), 4, 3)
    mean, log_var = encoder(graph.x, graph.adj)
    assert mean.shape == log_var.shape == (7, 6)
    with pytest.raises(ValueError, match="5 atom slots"):
        encoder(graph.x[:, :4], graph.adj[:, :4, :4])


def test_the_encoder_reads_atoms_by_slot():
    # the same molecule with its atom slots swapped is another input: the generator writes
    # slots in the data's order, so the encoder must tell the two apart
    torch.manual_seed(0)
    encoder = GraphEncoder(2, 2, 3, (8,), 4)
    a, b = two_atom_graph([0, 1], 1), two_atom_graph([1, 0], 1)
    assert not torch.allclose(encoder(a.x, a.adj)[0], encoder(b.x, b.adj)[0])


def test_the_kl_to_the_standard_normal_matches_a_case_computed_by_hand():
    # N(1, 1) and N(0, 4) in two dimensions: 1/2 (1 + 1 - 1 - 0) + 1/2 (0 + 4 - 1 - log 4)
    mean = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    log_var = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
    expected = 0.5 * 1.0 + 0.5 * (3.0 - math.log(4.0))
    assert torch.allclose(gaussian_kl(mean, log_var), torch.tensor([expected, 0.0]), atol=1e-6)


def test_the_loss_is_the_negative_log_likelihood_per_variable_plus_the_kl_per_variable():
    # 2 atoms, 1 pair: V = 3. Uniform logits over 2 atom types and 3 bond types:
    # -l = -(2 log 1/2 + log 1/3) / 3; KL of N(1, 1) in one dimension = 1/2
    decoded = DenseGraph(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, 3))
    real = two_atom_graph([0, 1], 2)
    term = autoencoder_loss(decoded, real, torch.ones(1, 1), torch.zeros(1, 1))
    reconstruction = -(2 * math.log(0.5) + math.log(1 / 3)) / 3
    assert term.reconstruction.item() == pytest.approx(reconstruction, abs=1e-6)
    assert term.kl.item() == pytest.approx(0.5, abs=1e-6)
    assert term.loss.item() == pytest.approx(reconstruction + 0.5 / 3, abs=1e-6)
    half = autoencoder_loss(decoded, real, torch.ones(1, 1), torch.zeros(1, 1), kl_weight=0.5)
    assert half.loss.item() == pytest.approx(reconstruction + 0.25 / 3, abs=1e-6)


def test_reparameterized_latents_are_the_mean_plus_scaled_noise_and_carry_gradients():
    mean = torch.tensor([[0.5, -1.0]], requires_grad=True)
    log_var = torch.tensor([[math.log(4.0), -30.0]], requires_grad=True)
    z = reparameterize(mean, log_var, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(1, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z, torch.tensor([[0.5 + 2.0 * noise[0, 0].item(), -1.0]]), atol=1e-6)
    z.sum().backward()
    assert mean.grad is not None and log_var.grad is not None
    assert log_var.grad[0, 0].item() == pytest.approx(0.5 * 2.0 * noise[0, 0].item(), abs=1e-6)


def test_trained_on_the_term_alone_each_graph_decodes_from_its_encoded_latent():
    # two graphs of three atoms that differ in every variable: after training generator and
    # encoder on the autoencoder term only, the argmax of the law at each graph's mean
    # latent is that graph (the latent, not the generator's bias, tells them apart)
    torch.manual_seed(0)
    vocab = Vocab(atoms=((6, 0), (7, 0)), max_atoms=3)  # T = 3, Y = 4
    generator = Generator(GeneratorConfig(z_dim=4, gen_hidden=(32, 32), gen_valence_mask=False),
                          vocab)
    encoder = GraphEncoder(3, 3, 4, (32,), 4)
    x_idx = torch.tensor([[1, 1, 1], [2, 2, 0]])
    adj_idx = torch.tensor([[[0, 1, 1], [1, 0, 1], [1, 1, 0]],
                            [[0, 2, 0], [2, 0, 0], [0, 0, 0]]])
    real = one_hot_graph(x_idx, adj_idx, 3, 4)
    optimizer = torch.optim.Adam([*generator.parameters(), *encoder.parameters()], lr=3e-3)
    noise = torch.Generator().manual_seed(1)
    for _ in range(300):
        mean, log_var = encoder(real.x, real.adj)
        decoded = generator(reparameterize(mean, log_var, generator=noise))
        loss = autoencoder_loss(decoded, real, mean, log_var).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        decoded = generator(encoder(real.x, real.adj)[0])
    assert torch.equal(decoded.x.argmax(-1), x_idx)
    rows, cols = torch.triu_indices(3, 3, 1)
    assert torch.equal(decoded.adj.argmax(-1)[:, rows, cols], adj_idx[:, rows, cols])


def test_training_with_the_autoencoder_logs_its_parts_and_resumes_exactly(train_data,
                                                                            tmp_path):
    def run(steps):
        return config(steps, autoencoder=3.0, log_every=10)

    straight, resumed = train_straight_and_resumed(run, 40, train_data, tmp_path)
    for key, value in straight.encoder.state_dict().items():
        torch.testing.assert_close(resumed.encoder.state_dict()[key], value, rtol=0, atol=0)
    logged = [json.loads(line) for line in (tmp_path / "straight" /
              "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == 4
    assert all(math.isfinite(r["autoencoder"]) and r["autoencoder"] > 0 and r["kl"] >= 0
               for r in logged)
    assert logged[-1]["autoencoder"] < logged[0]["autoencoder"]


def test_the_autoencoder_cannot_be_added_to_a_run_that_was_trained_without_it(train_data,
                                                                            tmp_path):
    Trainer(config(2), train_data, tmp_path / "run").fit()
    later = Trainer(config(4, autoencoder=1.0), train_data, tmp_path / "run")
    with pytest.raises(CheckpointError, match="no encoder"):
        later.resume()


def test_a_negative_weight_is_refused_with_its_name():
    with pytest.raises(ValueError, match="autoencoder"):
        config(2, autoencoder=-1.0)
