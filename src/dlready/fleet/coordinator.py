"""Rank 0's main thread: deadlines, heartbeats and the verdict (no torch here).

Rank 0 releases one step at a time through the ``control`` key, waits for every rank's result
of that step with a deadline, and names the ranks that did not answer: ``lost`` when their
heartbeat stopped (killed, stopped, wedged host), ``stalled`` when it still beats but the step
did not finish in time. Its own work runs on a worker thread like every other rank's, so a
collective that never returns cannot stop it from reporting.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from dlready.fleet.assemble import Gathered, assemble, layout_from_joins, likely_host
from dlready.fleet.report import STEP_TITLES, Finding, FleetReport, StepRecord
from dlready.render.text import counted

if TYPE_CHECKING:
    from dlready.fleet.launch import StopEvent
    from dlready.fleet.runtime import RankRun, WorkThread


def lost_after_s(timeout_s: float) -> float:
    """Silence after which a rank is named as lost: 5 s, shorter only for short --timeout.

    Heartbeats come every 0.5 s; under 2.5 s a busy host could miss a few and be misjudged.
    """
    return min(5.0, max(2.5, timeout_s / 4))


def skipped_reason(results: dict[int, Any]) -> str | None:
    """Why every rank skipped a step (``{"skipped": reason}``), or None when one measured."""
    reasons = {v.get("skipped") if isinstance(v, dict) else None for v in results.values()}
    if not results or None in reasons:
        return None
    return "; ".join(sorted(str(reason) for reason in reasons))


POLL_S = 0.1
PENDING_CHECK_S = 0.5
TERM_GRACE_S = 1.5
GOODBYE_S = 2.0
"""How long rank 0 keeps its store up for the others to read the verdict."""
"""After the launcher's SIGTERM, how long rank 0 waits for the others to say they got it too."""


def stopped_before_start(launcher: str, world: int, timeout_s: float) -> tuple[int, FleetReport]:
    """Rank 0's report when the launcher stopped the job before rank 0 met any rank (while
    torch was still loading): nothing about the others is known, and it says so."""
    from dlready.fleet.judge import exit_code

    gathered = Gathered(
        launcher=launcher, world_size=world, timeout_s=timeout_s, stopped_early=True
    )
    gathered.steps.append(
        StepRecord(
            name="rendezvous",
            status="failed",
            seconds=None,
            timeout_s=timeout_s,
            message="stopped by the launcher while rank 0 was starting",
        )
    )
    gathered.findings.append(
        Finding(
            kind="terminated",
            message=f"the launcher stopped the run during {STEP_TITLES['rendezvous']}, while "
            "rank 0 was still starting: no rank had reported yet, so the one that failed is "
            "not known here",
            fix="torchrun stops every rank when one exits: read the failing rank's output "
            "above torchrun's summary, fix it and run the fleet again",
        )
    )
    report = assemble(gathered)
    return int(exit_code(report)), report


def step_title(step: str) -> str:
    """A step's words; ``join`` and ``init`` are both parts of the rendezvous."""
    name = "rendezvous" if step in ("join", "init") else step
    return STEP_TITLES.get(name, name)


def interrupted_finding(step: str, signal_name: str) -> Finding:
    """The run was stopped from outside while every rank was still answering."""
    return Finding(
        kind="interrupted",
        message=f"the run was stopped from outside ({signal_name}) during "
        f"{step_title(step)}: every rank had answered until then, so no rank failed; "
        "the steps after it were not run",
        fix="nothing here points at a rank; if the stop was not yours, look for a job "
        "time limit or a cancel (`scancel`, Ctrl-C), then run the fleet again for the whole "
        "report",
    )


class Coordinator:
    """Runs the fleet from rank 0 and returns (exit code, report)."""

    def __init__(
        self, run: RankRun, worker: WorkThread, terminated: StopEvent, started: float
    ) -> None:
        self.rank_run = run
        self.board = run.board
        self.worker = worker
        self.terminated = terminated
        self.started = started
        self.world = run.world
        self.timeout_s = run.options.timeout_s
        self.gathered = Gathered(
            launcher=run.launch.launcher, world_size=self.world, timeout_s=self.timeout_s
        )
        self.beats: dict[int, tuple[int, float]] = {}
        self.control: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------

    def _host(self, rank: int) -> str:
        join = self.gathered.joins.get(rank)
        if join is not None:
            return str(join["hostname"])
        return likely_host(rank, self.gathered.joins) or "host unknown"

    def _who(self, ranks: list[int]) -> str:
        shown = ", ".join(f"rank {r} ({self._host(r)})" for r in ranks[:8])
        return shown + (f" and {len(ranks) - 8} more" if len(ranks) > 8 else "")

    def _stale(self, ranks: list[int]) -> list[int]:
        """Ranks whose heartbeat has not moved for :func:`lost_after_s`."""
        now = time.monotonic()
        stale = []
        for rank in ranks:
            beat = self.board.add(f"hb/{rank}", 0)
            previous = self.beats.get(rank)
            if previous is None or previous[0] != beat:
                self.beats[rank] = (beat, now)
            elif now - previous[1] >= lost_after_s(self.timeout_s):
                stale.append(rank)
        return stale

    def _publish(self, **changes: Any) -> None:
        self.control.update(changes)
        self.board.post("control", self.control)

    def _wait(self, key: str) -> tuple[str, list[int], list[int]]:
        """Wait for every rank's ``res/<key>/<rank>``.

        Returns (``ok`` | ``lost`` | ``timed_out`` | ``terminated``, missing, lost ranks).
        """
        deadline = time.monotonic() + self.timeout_s
        pending = list(range(self.world))
        next_check = time.monotonic() + PENDING_CHECK_S
        prefix = "join" if key == "join" else f"res/{key}"
        while True:
            if self.terminated.is_set():
                return "terminated", pending, []
            if self.board.add(f"count/{key}", 0) >= self.world:
                return "ok", [], []
            now = time.monotonic()
            if now >= next_check or now >= deadline:
                pending = [r for r in pending if not self.board.has(f"{prefix}/{r}")]
                next_check = now + PENDING_CHECK_S
                if not pending:
                    return "ok", [], []
                if key != "join":
                    stale = self._stale(pending)
                    if stale:
                        return "lost", pending, stale
                if now >= deadline:
                    return "timed_out", pending, []
            time.sleep(POLL_S)

    def _read(self, key: str) -> dict[int, Any]:
        prefix = "join" if key == "join" else f"res/{key}"
        present = [r for r in range(self.world) if self.board.has(f"{prefix}/{r}")]
        values = self.board.read_many([f"{prefix}/{r}" for r in present])
        return dict(zip(present, values, strict=True))

    def _record(self, name: str, status: str, started: float, message: str = "") -> None:
        self.gathered.steps.append(
            StepRecord(
                name=name,
                status=status,
                seconds=round(time.monotonic() - started, 3),
                timeout_s=self.timeout_s,
                message=message,
            )
        )

    def _finding_for(self, step: str, status: str, missing: list[int], lost: list[int]) -> Finding:
        title = step_title(step)
        if status == "lost":
            waiting = [r for r in missing if r not in lost]
            message = (
                f"{self._who(lost)} stopped answering during {title}: no heartbeat for "
                f"{lost_after_s(self.timeout_s):g} s (the process died, was stopped or its host hangs)"
            )
            if waiting:
                verb = "was" if len(waiting) == 1 else "were"
                message += f"; {counted(len(waiting), 'other rank')} {verb} left waiting for it"
            return Finding(
                kind="lost_rank",
                message=message,
                fix="look at that rank's own output and `dmesg` on its host (out of memory, "
                "a GPU error, a crash); then run the fleet again",
                ranks=tuple(lost),
                hosts=tuple(sorted({self._host(r) for r in lost})),
            )
        if status == "terminated":
            return Finding(
                kind="terminated",
                message=f"the launcher stopped the run during {title}"
                + (f"; {self._who(missing)} had died or not answered" if missing else ""),
                fix="torchrun stops every rank when one exits: read the failing rank's output "
                "above torchrun's summary, fix it and run the fleet again",
                ranks=tuple(missing),
                hosts=tuple(sorted({self._host(r) for r in missing})),
            )
        if step == "join":
            return Finding(
                kind="missing_rank",
                message=f"{self._who(missing)} never joined within {self.timeout_s:g} s "
                f"({self.world - len(missing)} of {self.world} ranks did)",
                fix="check that the process started on that host (the launcher's log), that "
                "it can reach MASTER_ADDR:MASTER_PORT, and that every node runs the same "
                "command; raise --timeout if nodes start slowly",
                ranks=tuple(missing),
                hosts=tuple(sorted({self._host(r) for r in missing})),
            )
        from dlready.fleet.judge import stalled_words

        cause, fix = stalled_words(
            [self.gathered.joins[r] for r in missing if r in self.gathered.joins]
        )
        return Finding(
            kind="stalled_rank",
            message=f"{self._who(missing)} did not finish {title} within {self.timeout_s:g} s "
            f"and still answers heartbeats: it is stuck ({cause})",
            fix=fix,
            ranks=tuple(missing),
            hosts=tuple(sorted({self._host(r) for r in missing})),
        )

    def _stop(self, step: str, status: str, missing: list[int], lost: list[int]) -> None:
        if status == "terminated":
            # Give the others a moment to say they got the signal too; the rest died.
            time.sleep(TERM_GRACE_S)
            missing = [r for r in missing if r != 0 and not self.board.has(f"term/{r}")]
            silent = [r for r in self.gathered.joins if r != 0 and not self.board.has(f"term/{r}")]
            if len(self.gathered.joins) == self.world and not silent:
                # Every rank joined and got the signal alive: nothing failed, the run was
                # cancelled (Ctrl-C, scancel, a time limit, torchrun stopped by hand).
                self.gathered.findings.append(interrupted_finding(step, self._signal_name()))
                if self.gathered.steps:
                    self.gathered.steps[-1] = replace(
                        self.gathered.steps[-1],
                        message=f"stopped from outside ({self._signal_name()})",
                    )
                return
            # Neither finished the step nor said it got the signal: it died first.
            self.gathered.lost.update(r for r in missing if r in self.gathered.joins)
        elif status == "timed_out" and step != "join":
            self.gathered.stalled.update(missing)
        self.gathered.lost.update(lost)
        self.gathered.findings.append(self._finding_for(step, status, missing, lost))

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> tuple[int, FleetReport]:
        try:
            self._steps()
        finally:
            self.gathered.seconds = round(time.monotonic() - self.started, 3)
        report = assemble(self.gathered)
        from dlready.fleet.judge import exit_code

        code = int(exit_code(report))
        try:
            if self.control.get("state") == "abort":
                self._publish(code=code)
            else:
                self._publish(state="done", code=code)
            self._await_goodbyes()
        except Exception:  # noqa: BLE001  # the others exit on their own when the store goes
            pass
        return code, report

    def _await_goodbyes(self) -> None:
        """Rank 0 may host the store: keep it up until the others have read the verdict."""
        expected = len([r for r in self.gathered.joins if r != 0 and r not in self.gathered.lost])
        deadline = time.monotonic() + GOODBYE_S
        while time.monotonic() < deadline and self.board.add("count/bye", 0) < expected:
            time.sleep(POLL_S / 2)

    def _steps(self) -> None:
        status, missing, lost = self._wait("join")
        self.gathered.joins = self._read("join")
        if status != "ok":
            self._record(
                "rendezvous", "timed_out" if status == "timed_out" else "failed", self.started
            )
            self._stop("join", status, missing, lost)
            self._publish(state="abort", code=1)
            return
        layout = layout_from_joins([self.gathered.joins[r] for r in range(self.world)])
        self.rank_run.layout = layout
        self._publish(
            state="go", node_of=layout.node_of, hostnames=layout.hostnames, steps=["init"]
        )
        self.worker.thread.start()
        for step in (
            "init",
            "health",
            "collective_correctness",
            "collective_speed",
            "point_to_point",
        ):
            begun = time.monotonic()
            self.worker.steps_ready[step].set()
            status, missing, lost = self._wait(step)
            name = "rendezvous" if step == "init" else step
            if status != "ok":
                self._record(
                    name,
                    "timed_out" if status == "timed_out" else "failed",
                    self.started if step == "init" else begun,
                    self._status_text(status, missing, lost),
                )
                self._stop(step, status, missing, lost)
                self._publish(state="abort", code=1)
                return
            results = self._read(step)
            self.gathered.results[step] = results
            errors = {
                r: v["error"] for r, v in results.items() if isinstance(v, dict) and "error" in v
            }
            if step == "init":
                backends = {v.get("backend") for v in results.values() if isinstance(v, dict)}
                self.gathered.backend = next(iter(backends - {None}), None)
            message = ""
            if errors:
                first = min(errors)
                message = f"rank {first}: {errors[first]}"
            skipped = skipped_reason(results)
            self._record(
                name,
                "failed" if errors else ("skipped" if skipped else "ok"),
                self.started if step == "init" else begun,
                message or skipped or "",
            )
            if step == "init":
                self._heterogeneity()
            if errors and step != "health":
                if step == "init":
                    self.gathered.findings.append(
                        Finding(
                            kind="init_failed",
                            message=f"the process group could not start: {message}",
                            fix="check that every node can reach the others on the network "
                            "(NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME name the interface to use)",
                            ranks=tuple(sorted(errors)),
                            hosts=tuple(sorted({self._host(r) for r in errors})),
                        )
                    )
                self._publish(state="abort", code=1)
                return
            following = {
                "init": "health",
                "health": "collective_correctness",
                "collective_correctness": "collective_speed",
                "collective_speed": "point_to_point",
            }.get(step)
            if following:
                self._publish(steps=[*self.control["steps"], following])

    def _signal_name(self) -> str:
        return self.terminated.signal_name

    def _status_text(self, status: str, missing: list[int], lost: list[int]) -> str:
        if status == "lost":
            return f"lost {self._who(lost)}"
        if status == "terminated":
            return "stopped by the launcher"
        return f"waiting for {self._who(missing)}"

    def _heterogeneity(self) -> None:
        # The comparison itself runs in assemble(); timing it here keeps the step list whole.
        begun = time.monotonic()
        from dlready.fleet import judge
        from dlready.fleet.assemble import node_numbers, nodes_from, rank_records

        numbers = node_numbers(self.gathered.joins)
        nodes = nodes_from(self.gathered, numbers)
        findings = judge.heterogeneity_findings(nodes, rank_records(self.gathered, numbers, nodes))
        self._record(
            "heterogeneity",
            "ok",
            begun,
            counted(len(findings), "difference") if findings else "every node and GPU matches",
        )
