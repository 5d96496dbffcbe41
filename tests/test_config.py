"""Configs by concern, recipes as files, and how saved configs meet retired levers."""

import json

import pytest

from molgan.checkpoint import CheckpointError
from molgan.config import RunConfig, TrainConfig
from molgan.recipes import load_recipe, recipe_fields, recipe_names
from molgan.retired import ANY_VALUE, REMOVED_IN, RETIRED


def test_the_shipped_recipes_are_default_molgan_and_the_pretrained_models():
    assert recipe_names() == ("default", "molgan", "pretrained-moses", "pretrained-qm9")
    with pytest.raises(ValueError, match="default, molgan, pretrained-moses, pretrained-qm9"):
        recipe_fields("wgan")


@pytest.mark.parametrize("model", ["qm9", "moses"])
def test_the_pretrained_recipe_is_the_shipped_models_config_less_its_run_settings(model):
    """Each recipe file ``pretrained-NAME`` reproduces the shipped checkpoint's saved config:
    with the run's own settings (data, budget, device, seed) put back, nothing differs,
    sampling temperature included."""
    import dataclasses

    from molgan.checkpoint import load_checkpoint, pretrained_path

    shipped = RunConfig.from_dict(load_checkpoint(pretrained_path(model))["config"])
    run_settings = dataclasses.asdict(shipped.train.run)
    assert load_recipe(f"pretrained-{model}", **run_settings) == shipped
    assert load_recipe(f"pretrained-{model}") != RunConfig()


def test_the_default_recipe_file_is_what_the_config_classes_default_to():
    assert load_recipe("default") == RunConfig()


def test_the_molgan_recipe_has_de_cao_and_kipfs_settings():
    run = load_recipe("molgan")
    tc = run.train
    assert run.generator.z_dim == 32 and run.generator.gen_hidden == (128, 256, 512)
    assert tc.optim.generator_lr == tc.optim.critic_lr == 1e-4
    assert (tc.optim.beta1, tc.optim.beta2) == (0.5, 0.9) and tc.optim.n_critic == 5
    assert tc.penalties.lambda_gp == 10.0 and tc.sampling.decode == "argmax"
    assert run.critic.minibatch_distance is False  # no batch features
    assert tc.penalties.valence_penalty == 0.0 and run.generator.gen_valence_mask is False
    assert tc.diversity.diversity_rl == tc.diversity.critic_draws == 0.0
    assert tc.optim.generator_ema == 0.0
    assert tc.penalties.feature_penalty == tc.penalties.data_penalty == 0.0


def test_overrides_apply_on_top_of_a_recipe_and_run_settings_stay_the_users():
    run = load_recipe("molgan", steps=30, lr=2e-4)
    assert run.train.run.steps == 30 and run.train.optim.lr == 2e-4
    assert all(field not in recipe_fields(name) for name in recipe_names()
               for field in ("data", "steps", "device", "seed"))


def test_flat_form_round_trips_and_replace_changes_one_field():
    tc = TrainConfig.from_flat({"steps": 7, "lr_g": None, "rl_draws": 2})
    assert TrainConfig.from_flat(tc.to_flat()) == tc
    assert tc.optim.generator_lr == tc.optim.lr
    assert tc.replace(steps=9).run.steps == 9 and tc.replace(steps=9).diversity.rl_draws == 2
    with pytest.raises(CheckpointError, match="unknown"):
        TrainConfig.from_flat({"stepz": 1})


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", 0), ("n_critic", 0),
                                          ("lr", 0.0), ("precision", "fp8"),
                                          ("log_every", 0), ("lambda_rl", 0.5),
                                          ("sample_temperature", 0.0), ("relax", "sigmoid")])
def test_each_part_refuses_invalid_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig.from_flat({field: value})


def test_runs_saved_before_a_field_existed_keep_their_recipe():
    old = {"train": {"steps": 10}, "critic": {"critic_agg": 64}}
    restored = RunConfig.from_dict(old)  # a checkpoint written before these fields
    assert restored.critic.minibatch_distance is False and restored.critic.minibatch_kernels == 0
    assert restored.generator.gen_valence_mask is False and restored.generator.valence_draw is False
    tc = restored.train
    assert tc.penalties.valence_penalty == 0.0 and tc.sampling.decode == "argmax"
    assert tc.diversity.diversity_rl == tc.diversity.critic_draws == 0.0
    assert tc.sampling.sample_temperature == tc.diversity.rl_temperature == 1.0
    assert tc.optim.generator_ema == 0.0 and tc.optim.lr_g is None
    assert tc.penalties.feature_penalty == tc.penalties.data_penalty == 0.0
    fresh = RunConfig.from_dict(old, saved=False)  # a user's config file: today's defaults
    assert fresh.train == TrainConfig(run=fresh.train.run) and fresh.train.run.steps == 10


def test_retired_levers_at_their_neutral_value_load_silently():
    saved = {"train": {"steps": 10, **{k: v for k, v in RETIRED["TrainConfig"].items()
                                       if v is not ANY_VALUE}},
             "critic": dict(RETIRED["CriticConfig"], minibatch_nearest=16),
             "generator": dict(RETIRED["GeneratorConfig"])}
    saved["train"].update(temperature_steps=500, match_descriptors="rings", compile_loss=False)
    run = RunConfig.from_dict(saved)
    assert run.train.run.steps == 10


@pytest.mark.parametrize("section, field, value, release", [
    ("train", "critic_drift", 0.001, REMOVED_IN),
    ("train", "repeat_memory", "argmax", REMOVED_IN),
    ("generator", "gen_activation", "relu", REMOVED_IN),
    ("critic", "pack", 2, REMOVED_IN),
    ("train", "collision_kernel", "cosine", "0.3.22"),
    ("train", "collision_temperature", 1.0, "0.3.22")])
def test_retired_levers_at_another_value_fail_in_one_line_naming_field_and_release(
        section, field, value, release):
    with pytest.raises(CheckpointError) as info:
        RunConfig.from_dict({section: {field: value}})
    message = str(info.value)
    assert field in message and f"molgan {release} removed" in message
    assert f"molgan < {release}" in message and "\n" not in message


def test_train_help_lists_at_most_80_flags_grouped_and_none_retired(capsys):
    from molgan.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    flags = {line.split()[0] for line in text.splitlines() if line.startswith("  --")}
    # 60 after the retirements of 0.2.0, eighteen measured options and --keep-every
    assert len(flags) <= 80
    retired = {"--" + name.replace("_", "-") for fields in RETIRED.values() for name in fields}
    assert not flags & retired
    for title in ("optimization:", "WGAN-GP and penalties:", "diversity RL:", "sampling:"):
        assert title in text
    recipe_help = " ".join(text.split("\n  --recipe NAME", 1)[1].split("\n  --config")[0].split())
    assert all(name in recipe_help for name in recipe_names())


def test_cli_recipe_and_config_file_compose(cache_dir, tmp_path, small_smi):
    from molgan.cli import main

    cfg = tmp_path / "run.toml"
    cfg.write_text('[optimization]\nn_critic = 3\n[generator]\nz_dim = 12\n')
    out = tmp_path / "run"
    assert main(["train", "--recipe", "molgan", "--config", str(cfg), "--data", str(small_smi),
                 "--steps", "2", "--batch-size", "8", "--z-dim", "16", "--out", str(out),
                 "--cache-dir", str(cache_dir), "--eval-samples", "10"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["n_critic"] == 3 and saved["generator"]["z_dim"] == 16
    assert saved["train"]["decode"] == "argmax" and saved["train"]["lr"] == 1e-4


def test_the_motif_descriptor_is_named_checked_and_saved():
    assert RunConfig().train.diversity.motif_descriptor == "rings"
    with pytest.raises(ValueError, match="motif_descriptor must be one of"):
        RunConfig.from_flat({"motif_descriptor": "cages"})
    saved = RunConfig.from_flat({"motif_descriptor": "bridges"}).to_dict()
    assert RunConfig.from_dict(json.loads(json.dumps(saved))).to_flat()[
        "motif_descriptor"] == "bridges"
    # a run saved before the field existed counts the rings cell
    del saved["train"]["motif_descriptor"]
    assert RunConfig.from_dict(saved).train.diversity.motif_descriptor == "rings"


def test_a_share_flag_reads_numbers_and_the_switch_words_it_once_was(tmp_path):
    from molgan.cli import build_parser

    parser = build_parser()
    for text, share in (("0.5", 0.5), ("true", 1.0), ("false", 0.0)):
        args = parser.parse_args(["train", "--motif-floor", text])
        assert args.motif_floor == share
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--motif-floor", "half"])
    with pytest.raises(ValueError, match="motif_floor must be in"):
        RunConfig.from_flat({"motif_floor": 1.5})
    assert RunConfig.from_dict({"train": {"motif_floor": True}}).to_flat()["motif_floor"] == 1


def test_a_field_value_parses_as_its_flag_would_in_any_section():
    from molgan.options import parse_field

    assert parse_field("gen_hidden", "256,512,1024") == (256, 512, 1024)
    assert parse_field("compile", "on") is True
    assert parse_field("diversity_rl", "0") == 0.0
    assert parse_field("critic_conv", "128,64") == (128, 64)
    with pytest.raises(ValueError, match="no config field 'gen_hiden'"):
        parse_field("gen_hiden", "1")
    with pytest.raises(ValueError, match="n_critic='two'"):
        parse_field("n_critic", "two")


def test_benchmark_overrides_build_the_config_they_name():
    from tests.scripts import load_script

    overrides = load_script("bench_train").parse_overrides(
        ["gen_hidden=256,512,1024", "latent-coverage=3", "compile=on"])
    assert overrides == {"gen_hidden": (256, 512, 1024), "latent_coverage": 3.0,
                         "compile": True}
    config = load_recipe("default", **overrides)
    assert config.generator.gen_hidden == (256, 512, 1024)
    assert config.train.diversity.latent_coverage == 3.0
