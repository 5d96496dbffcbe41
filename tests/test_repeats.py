import pytest
import torch

from molgan.repeats import RepeatMemory, diversity_rewards, graph_keys, repeat_weights


def graphs(b=6, n=5, t=4, y=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, t, (b, n), generator=g, dtype=torch.uint8)
    upper = torch.triu(torch.randint(0, y, (b, n, n), generator=g), diagonal=1)
    return x, (upper + upper.transpose(1, 2)).to(torch.uint8)


def test_graph_keys_are_equal_exactly_for_equal_graphs_and_stable_across_calls():
    x, adj = graphs(b=200)
    keys = graph_keys(x, adj)
    assert keys.dtype == torch.int64 and keys.shape == (200,) and bool((keys >= 0).all())
    distinct = {(xi.numpy().tobytes(), ai.numpy().tobytes()) for xi, ai in zip(x, adj)}
    assert len(set(keys.tolist())) == len(distinct)
    assert torch.equal(graph_keys(x, adj), keys)  # seeded weights: same in every call
    copies = graph_keys(x[[3, 3, 7]], adj[[3, 3, 7]])
    assert copies[0] == copies[1] == keys[3] and copies[2] == keys[7]
    changed = adj[3].clone()
    changed[0, 1] = changed[1, 0] = (int(changed[0, 1]) + 1) % 3  # one bond
    assert graph_keys(x[3:4], changed[None]) != keys[3]
    lower_only = adj[3].clone()
    lower_only[1, 0] = (int(lower_only[1, 0]) + 1) % 3  # the key reads the upper triangle
    assert graph_keys(x[3:4], lower_only[None]) == keys[3]


def test_repeat_memory_counts_the_last_window_keys_and_wraps():
    memory = RepeatMemory(window=5)
    assert memory.push_and_count(torch.tensor([1, 1, 2])).tolist() == [2, 2, 1]
    assert memory.push_and_count(torch.tensor([1, 3])).tolist() == [3, 1]
    # ring now [1, 1, 2, 1, 3]; the next two keys replace the first two 1s
    assert memory.push_and_count(torch.tensor([3, 2])).tolist() == [2, 2]
    assert sorted(memory.keys.tolist()) == [1, 2, 2, 3, 3]
    # a batch larger than the window keeps its last `window` keys: 9, 8, 8, 8, 7
    assert memory.push_and_count(torch.tensor([9, 9, 9, 8, 8, 8, 7])).tolist() == [
        1, 1, 1, 3, 3, 3, 1]


def test_repeat_memory_state_round_trip_and_window_mismatch():
    memory = RepeatMemory(window=4)
    memory.push_and_count(torch.tensor([5, 6, 5]))
    restored = RepeatMemory(window=4)
    restored.load_state(memory.state())
    assert restored.push_and_count(torch.tensor([5])).tolist() == memory.push_and_count(
        torch.tensor([5])).tolist() == [3]
    with pytest.raises(ValueError, match="window"):
        RepeatMemory(window=8).load_state(memory.state())
    with pytest.raises(ValueError, match="positive"):
        RepeatMemory(window=0)


def test_repeat_weights_are_zero_up_to_the_threshold_then_log_of_the_excess():
    counts = torch.tensor([1, 4, 5, 40])
    expected = torch.tensor([0.0, 0.0, torch.log(torch.tensor(1.25)).item(),
                             torch.log(torch.tensor(10.0)).item()])
    torch.testing.assert_close(repeat_weights(counts, 4.0), expected)



def test_diversity_rewards_penalty_and_fitness_sharing_by_hand():
    valid = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    counts = torch.tensor([1, 8, 1, 0, 40, 40])
    penalty = diversity_rewards(valid, counts, threshold=4.0)
    log = torch.log(torch.tensor([2.0, 10.0]))
    torch.testing.assert_close(penalty, torch.tensor([1.0, 1 - log[0], 0.0, 1.0,
                                                      1 - log[1], -log[1]]))
    assert penalty[4] < penalty[2]  # a much-repeated valid graph scores below an invalid one
    share = diversity_rewards(valid, counts, threshold=4.0, mode="share")
    torch.testing.assert_close(share, torch.tensor([1.0, 0.5, 0.0, 1.0, 0.1, 0.0]))
    assert (share[valid == 1] > 0).all() and (share[valid == 0] == 0).all()
    with pytest.raises(ValueError, match="share"):
        diversity_rewards(valid, counts, 4.0, mode="ratio")
