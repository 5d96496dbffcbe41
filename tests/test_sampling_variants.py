"""scripts/sampling_variants.py: the latent scale, and the temperatures of atom presence, of
bond presence and of bond orders."""

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


#: The two first-token variants: the keyword that sets one, and the logits it re-weights.
FIRST_TOKEN = [("presence_temperature", "x"), ("pair_temperature", "adj")]


@pytest.mark.parametrize("keyword, part", FIRST_TOKEN + [("order_temperature", "adj")])
def test_a_first_token_at_the_sampling_temperature_draws_the_plain_samples(
        variants, keyword, part) -> None:
    """Tp = T gives q = softmax(l / T): T log q differs from l by a constant per node or
    pair, which leaves every Gumbel-max draw where it was."""
    g = generator()
    variant = variants.SamplingVariant(g, temperature=1.7, **{keyword: 1.7})
    for a, b in zip(draws(g, 1.7), draws(variant, 1.7)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("keyword, part", FIRST_TOKEN)
def test_a_first_token_is_drawn_at_its_own_temperature_and_the_rest_at_the_sampling_one(
        variants, keyword, part) -> None:
    """"No atom" (or "no bond") keeps its chance at T 1; the elements (bond orders) share
    the rest as at T 2.5; the other part of the graph is left alone."""
    g = generator()
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    variant = variants.SamplingVariant(g, temperature=2.5, **{keyword: 1.0})
    with torch.no_grad():
        plain, tempered = g(z), variant(z)
    logits = getattr(plain, part)
    law = torch.softmax(getattr(tempered, part) / 2.5, dim=-1)
    first = torch.softmax(logits, dim=-1)[..., 0]
    torch.testing.assert_close(law[..., 0], first)
    open_ = first < 0.999  # slots and pairs with another choice (not the diagonal, not masked)
    rest = torch.softmax(logits[..., 1:] / 2.5, dim=-1)
    torch.testing.assert_close((law[..., 1:] / (1 - first).unsqueeze(-1))[open_], rest[open_])
    other = "adj" if part == "x" else "x"
    torch.testing.assert_close(getattr(tempered, other), getattr(plain, other))
    with pytest.raises(ValueError, match=keyword.replace("_", " ")):
        variants.SamplingVariant(g, **{keyword: -1.0})


def test_the_latent_scale_multiplies_the_same_normal_draws(variants) -> None:
    g = generator()
    base = g.sample_z(7, generator=torch.Generator().manual_seed(2))
    scaled = variants.SamplingVariant(g, latent_scale=1.5).sample_z(
        7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(scaled, 1.5 * base)
    with pytest.raises(ValueError, match="latent scale"):
        variants.SamplingVariant(g, latent_scale=0.0)


def test_bond_orders_are_drawn_at_their_own_temperature_and_bond_presence_at_the_sampling_one(
        variants) -> None:
    """"No bond" keeps its chance at T 2.5; the bond orders share the rest as at To 1; the
    atoms are left alone. With a pair temperature as well, "no bond" follows that one."""
    g = generator()
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = g(z)
        orders = variants.SamplingVariant(g, temperature=2.5, order_temperature=1.0)(z)
        both = variants.SamplingVariant(g, temperature=2.5, order_temperature=1.0,
                                        pair_temperature=1.3)(z)
    for tempered, none_temperature in ((orders, 2.5), (both, 1.3)):
        law = torch.softmax(tempered.adj / 2.5, dim=-1)
        first = torch.softmax(plain.adj / none_temperature, dim=-1)[..., 0]
        torch.testing.assert_close(law[..., 0], first)
        open_ = first < 0.999
        rest = torch.softmax(plain.adj[..., 1:], dim=-1)
        torch.testing.assert_close((law[..., 1:] / (1 - first).unsqueeze(-1))[open_],
                                   rest[open_])
        torch.testing.assert_close(tempered.x, plain.x)
    with pytest.raises(ValueError, match="order temperature"):
        variants.SamplingVariant(g, order_temperature=0.0)
