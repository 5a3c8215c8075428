"""The calibration registry: every entry's data, form and posterior agree with each other."""

import pytest

from dynsim import calibrations, cli, posterior


@pytest.mark.parametrize("name", sorted(calibrations.CALIBRATIONS))
def test_each_calibration_names_its_data_form_and_posterior_consistently(name):
    cal = calibrations.get(name)
    post = posterior.load(cal.posterior_path)
    assert post.meta.get("form", "chinchilla") == cal.form  # fitted in the form the registry names
    assert post.meta["data_hash"] == cal.dataset().attrs["data_hash"]  # to the data the registry loads
    assert bool(post.meta.get("held_out")) == bool(cal.hold_out)


def test_an_unknown_calibration_is_one_line_naming_the_known_ones(capsys):
    assert cli.main(["predict", "--calibration", "nope", "--pretrain", "20BT"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(n in err for n in calibrations.CALIBRATIONS)
    with pytest.raises(posterior.PosteriorError):
        posterior.bundled_path("nope")
