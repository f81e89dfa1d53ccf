"""The portfolio engine: its schedule, and that it runs every member and shares
what one found with the next."""

from __future__ import annotations

import pytest

from daxfuzz.campaign.portfolio import SLICE_MAX, schedule


def test_schedule_for_a_minute_is_doubling_rounds_random_first_with_half():
    # 60 s: the unit is 60/20 = 3 s; random takes two units, each guided engine one;
    # then 6 s; the last slice is what is left
    got = [(m, round(t, 6), r) for m, t, r in schedule(60)]
    assert got == [("random", 6, 0), ("hypothesis", 3, 0), ("atheris", 3, 0),
                   ("random", 12, 1), ("hypothesis", 6, 1), ("atheris", 6, 1),
                   ("random", 24, 2)]


def test_a_short_budget_skips_atheris_slices_too_short_for_its_start_up():
    # 10 s: units of 1 s (at least FIRST_MIN), then 2: atheris needs 3 s and never runs
    got = [(m, round(t, 6)) for m, t, _ in schedule(10)]
    assert got == [("random", 2), ("hypothesis", 1), ("random", 4), ("hypothesis", 2),
                   ("random", 1)]


def test_long_campaigns_turn_the_members_over_and_fill_the_budget():
    plan = list(schedule(8 * 3600))
    assert max(t for m, t, _ in plan if m != "random") == SLICE_MAX
    assert max(t for m, t, _ in plan if m == "random") == 2 * SLICE_MAX
    assert abs(sum(t for _, t, _ in plan) - 8 * 3600) < 1e-6
    assert {m for m, _, _ in plan[-6:]} == {"random", "hypothesis", "atheris"}
    share = sum(t for m, t, _ in plan if m == "random") / (8 * 3600)
    assert 0.49 < share < 0.51


def test_find_portfolio_reports_the_time_after_earlier_slices(monkeypatch):
    from daxfuzz.campaign import zoo

    calls = []

    def fake(member, found_by):
        def find(variant, g, budget, seed, want=None, corpus=None):
            calls.append((member, round(budget, 1), seed))
            if member == found_by:
                return True, 0.5, 7, ["op"]
            return False, budget, 10, None
        return find

    monkeypatch.setattr(zoo, "find_random", fake("random", "hypothesis"))
    monkeypatch.setattr(zoo, "FINDERS", dict(zoo.FINDERS, random=fake("random", "hypothesis"),
                                             hypothesis=fake("hypothesis", "hypothesis")))
    found, secs, execs, ops = zoo.find_portfolio("7.2", None, 60, seed=1)
    # random's 6 s slice finds nothing (the fake returns at once), Hypothesis finds
    assert found and ops == ["op"] and execs == 17
    assert calls == [("random", 6.0, 1), ("hypothesis", 3.0, 1)]
    assert 0.5 <= secs < 1.5


@pytest.mark.smoke
def test_portfolio_campaign_runs_every_member_and_records_the_run(tmp_path, capsys):
    from daxfuzz.cli import main as cli

    # 12 s: random 2, Hypothesis 1, random 4, Hypothesis 2, random 3 (atheris needs a
    # 3 s slice and gets none) -- on plain 7.2 with its documented divergences known,
    # so no reduction takes the time
    rc = cli(["fuzz", "--target", "7.2", "--time", "12", "--seed", "3", "-q", "--no-report",
              "--findings", str(tmp_path / "f"), "--corpus", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert rc in (0, 1), out
    assert out.startswith("daxfuzz fuzz: portfolio on 7.2")
    from daxfuzz.campaign.folder import Campaign

    run = Campaign(str(tmp_path / "f" / "campaign")).state["runs"][-1]
    assert run["engine"] == "portfolio" and run["status"] == "done" and run["execs"] > 0
    # the plan's slices, each member's execs counted apart (their sum: the run's)
    members = run["members"]
    assert {m: v["slices"] for m, v in members.items()} == {"random": 3, "hypothesis": 2}
    assert all(v["execs"] > 0 for v in members.values())
    assert sum(v["execs"] for v in members.values()) == run["execs"]
    assert "  members: random " in out


def test_timed_cuts_slices_to_the_clock_and_stops_when_too_little_is_left():
    from daxfuzz.campaign.portfolio import timed

    now = [100.0]
    got = []
    for member, t, rnd in timed(10, clock=lambda: now[0]):
        got.append((member, round(t, 6), rnd))
        now[0] += t + (1.5 if member == "random" and rnd == 0 else 0)  # a reduction overran
    # planned: random 2, hypothesis 1, random 4, hypothesis 2, random 1; the 1.5 s overrun
    # leaves 1.5 s for the last hypothesis slice and nothing for random's last
    assert got == [("random", 2, 0), ("hypothesis", 1, 0), ("random", 4, 1),
                   ("hypothesis", 1.5, 1)]
