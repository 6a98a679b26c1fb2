"""The demo's deploy line: computed from what the demo measured, and honest about timing noise."""

from dfq_sam_plugin.demo import recommendation, time_ratio


def _summary(rounds):
    return {"choice": {"name": "float"}, "export": "out/int8", "cpu": {"name": "amx"}, "prompts": 4,
            "results": {"nuclei": {m: {"fidelity": f} for m, f in (("float", 0.97), ("int8", 0.95))},
                        "mni": {m: {"fidelity": f} for m, f in (("float", 0.96), ("int8", 0.94))}},
            "end_to_end_ms": {m: sorted(t)[len(t) // 2] for m, t in rounds.items()},
            "end_to_end_rounds_ms": rounds, "model_mib": {"float": 26.5, "int8": 10.6}}


def test_a_ratio_only_where_every_round_agrees():
    rounds = {"float": [100, 110, 90, 100, 105], "int8": [150, 160, 140, 155, 150]}
    assert time_ratio(rounds, "int8", "float").startswith("1.50x the time (every round 1.43-1.56x)")
    noisy = {"float": [100, 300, 100, 100, 100], "int8": [130, 200, 120, 125, 140]}  # one spike reverses the order
    assert time_ratio(noisy, "int8", "float") == "about the same time (rounds 0.67-1.40x, not ranked)"


def test_recommendation_names_the_choice_and_trades():
    line = recommendation(_summary({"float": [100, 300, 100], "int8": [130, 200, 120]}))
    assert "runs encoder 'float'" in line and "FP-fidelity 0.970 / 0.960 (nuclei / mni)" in line
    assert "int8 about the same time" in line and "fidelity -0.020 / -0.020, 10.6 MiB" in line
