"""scripts/sampling_variants.py: the latent scale and the atom-presence temperature."""

import numpy as np
import pytest
import torch

from molgan.generator import Generator, GeneratorConfig
from molgan.sample import Sampler
from tests.graphs import VOCAB
from tests.scripts import load_script


@pytest.fixture(scope="module")
def variants():
    return load_script("sampling_variants")


def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(z_dim=8, gen_hidden=(16, 32)), VOCAB).eval()


def draws(model, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    sampler = Sampler(model, VOCAB, batch_size=64, decode="sample", temperature=temperature)
    return sampler.sample_graphs(200, seed=3)


def test_no_variant_draws_the_plain_samples(variants) -> None:
    g = generator()
    for a, b in zip(draws(g, 2.0), draws(variants.SamplingVariant(g, temperature=2.0), 2.0)):
        np.testing.assert_array_equal(a, b)


def test_presence_at_the_sampling_temperature_draws_the_plain_samples(variants) -> None:
    """Tp = T gives q = softmax(l / T): T log q differs from l by a constant per node, which
    leaves every Gumbel-max draw where it was."""
    g = generator()
    variant = variants.SamplingVariant(g, presence_temperature=1.7, temperature=1.7)
    for a, b in zip(draws(g, 1.7), draws(variant, 1.7)):
        np.testing.assert_array_equal(a, b)


def test_presence_is_drawn_at_its_own_temperature_and_elements_at_the_sampling_one(
        variants) -> None:
    g = generator()
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    variant = variants.SamplingVariant(g, presence_temperature=1.0, temperature=2.5)
    with torch.no_grad():
        plain, law = g(z).x, torch.softmax(variant(z).x / 2.5, dim=-1)
    empty = torch.softmax(plain, dim=-1)[..., 0]
    torch.testing.assert_close(law[..., 0], empty)
    elements = torch.softmax(plain[..., 1:] / 2.5, dim=-1)
    torch.testing.assert_close(law[..., 1:] / (1 - empty).unsqueeze(-1), elements)
    torch.testing.assert_close(variant(z).adj, g(z).adj)


def test_the_latent_scale_multiplies_the_same_normal_draws(variants) -> None:
    g = generator()
    base = g.sample_z(7, generator=torch.Generator().manual_seed(2))
    scaled = variants.SamplingVariant(g, latent_scale=1.5).sample_z(
        7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(scaled, 1.5 * base)
    with pytest.raises(ValueError, match="latent scale"):
        variants.SamplingVariant(g, latent_scale=0.0)


def test_pairs_at_the_sampling_temperature_draw_the_plain_samples(variants) -> None:
    g = generator()
    variant = variants.SamplingVariant(g, pair_temperature=1.7, temperature=1.7)
    for a, b in zip(draws(g, 1.7), draws(variant, 1.7)):
        np.testing.assert_array_equal(a, b)


def test_bond_presence_is_drawn_at_its_own_temperature_and_orders_at_the_sampling_one(
        variants) -> None:
    g = generator()
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(4))
    variant = variants.SamplingVariant(g, pair_temperature=1.0, temperature=2.5)
    with torch.no_grad():
        plain, law = g(z).adj, torch.softmax(variant(z).adj / 2.5, dim=-1)
    none = torch.softmax(plain, dim=-1)[..., 0]
    torch.testing.assert_close(law[..., 0], none)
    pairs = none < 0.999  # pairs that can bond (not the diagonal, not masked)
    orders = torch.softmax(plain[..., 1:] / 2.5, dim=-1)
    torch.testing.assert_close((law[..., 1:] / (1 - none).unsqueeze(-1))[pairs], orders[pairs])
    torch.testing.assert_close(variant(z).x, g(z).x)
    with pytest.raises(ValueError, match="pair temperature"):
        variants.SamplingVariant(g, pair_temperature=-1.0)
