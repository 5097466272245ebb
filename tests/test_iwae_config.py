"""objective.name="iwae" has no beta: config checks reject a KL weight or warm-up."""

import pytest

from vae_jax import config_checks

from helpers import make_config

MESSAGE = (
    r"objective.name='iwae' ignores objective.beta and objective.kl_warmup_steps: "
    r"set beta=1 and kl_warmup_steps=0"
)


@pytest.mark.parametrize(
    "beta, warmup", [(0.5, 0), (2.0, 0), (1.0, 100), (0.0, 10), (0.5, 100)]
)
def test_iwae_rejects_beta_and_kl_warmup(beta, warmup):
    """``negative_iwae_bound`` ignores hparams: L_k has no KL term to weigh (Burda et
    al. 2015, eq. 8), so beta != 1 or a warm-up would be silently dropped. One line
    names both fields, whichever (or both) is set."""
    config = make_config(
        objective={"name": "iwae", "beta": beta, "kl_warmup_steps": warmup}
    )
    with pytest.raises(ValueError, match=MESSAGE) as err:
        config_checks.validate_config(config)
    assert "\n" not in str(err.value)  # one problem, one line


def test_iwae_with_beta_one_and_elbo_with_beta_pass():
    config_checks.validate_config(make_config(objective={"name": "iwae"}))
    config_checks.validate_config(
        make_config(objective={"name": "elbo", "beta": 0.5, "kl_warmup_steps": 100})
    )
