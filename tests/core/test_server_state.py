"""The server's one decision (``ServerState``), from a fake source and fake worker reports."""

from __future__ import annotations

from dataclasses import dataclass

from tfaas.core.servable_id import ServableId
from tfaas.core.server_state import Decision, ServerState, WorkerReport
from tfaas.core.source import AspiredVersion
from tfaas.core.states import ManagerState, ServableState

AVAILABLE, LOADING, END, UNLOADING = (
    ManagerState.AVAILABLE,
    ManagerState.LOADING,
    ManagerState.END,
    ManagerState.UNLOADING,
)


@dataclass(frozen=True)
class Model:
    swap_policy: str = "availability"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def version(number: int, name: str = "m") -> AspiredVersion:
    return AspiredVersion(ServableId(name, number), f"/models/{name}/{number}")


def report(clock: Clock, listening: bool = True, name: str = "m", **versions: tuple) -> WorkerReport:
    """``v1=(AVAILABLE,)`` or ``v2=(END, "error")``: the worker's last state of each version."""
    states = {}
    for key, (state, *error) in versions.items():
        id = ServableId(name, int(key[1:]))
        states[id] = ServableState(id, state, error[0] if error else None, clock())
    return WorkerReport(listening=listening, states=states)


def aspired(decision: Decision, name: str = "m") -> list[int]:
    return [v.id.version for v in decision.models[name].aspired]


def serving_state(clock: Clock, workers: tuple[str, ...] = ("a", "b"), versions: tuple[int, ...] = (1,)) -> ServerState:
    """Model ``m`` with ``versions`` aspired and AVAILABLE in every worker, all listening."""
    state = ServerState(clock)
    state.set_models({"m": Model()}, ["m"])
    state.set_aspired("m", [version(v) for v in versions])
    for worker in workers:
        state.report(worker, report(clock, **{f"v{v}": (AVAILABLE,) for v in versions}))
    return state


def test_a_cold_start_loads_in_place_and_serves_once_every_listening_worker_has_the_version():
    clock = Clock()
    state = ServerState(clock)
    state.set_models({"m": Model()}, ["m"])
    state.set_aspired("m", [version(1)])
    state.report("a", WorkerReport())
    state.report("b", WorkerReport())
    decisions = state.decide()
    assert all(d.rotation and aspired(d) == [1] for d in decisions.values())  # NOTE: nothing serves: listen, load
    assert decisions["a"].not_ready == {"m": "version 1 is loading"}

    state.report("a", report(clock, v1=(AVAILABLE,)))
    state.report("b", report(clock, v1=(LOADING,)))
    decisions = state.decide()
    assert decisions["a"].models["m"].serving == ()  # NOTE: b takes requests too and cannot serve it yet
    assert decisions["a"].states["m"][1].state is LOADING

    state.report("b", report(clock, v1=(AVAILABLE,)))
    decisions = state.decide()
    assert [d.models["m"].serving for d in decisions.values()] == [(1,), (1,)]
    assert decisions["b"].not_ready == {} and decisions["b"].states["m"][1].state is AVAILABLE


def test_a_new_version_loads_in_one_window_at_a_time_and_serves_when_all_have_it():
    clock = Clock()
    state = serving_state(clock)
    state.set_aspired("m", [version(2)])
    decisions = state.decide()
    assert (aspired(decisions["a"]), decisions["a"].rotation) == ([2, 1], False)  # NOTE: its window
    assert (aspired(decisions["b"]), decisions["b"].rotation) == ([1], True)  # NOTE: takes the traffic
    assert decisions["b"].models["m"].serving == (1,)

    state.report("a", report(clock, listening=False, v1=(AVAILABLE,), v2=(AVAILABLE,)))
    decisions = state.decide()
    assert decisions["a"].rotation and decisions["b"].rotation  # NOTE: a goes back; b's turn comes after
    assert aspired(decisions["b"]) == [1]
    state.report("a", report(clock, v1=(AVAILABLE,), v2=(AVAILABLE,)))
    decisions = state.decide()
    assert (aspired(decisions["b"]), decisions["b"].rotation) == ([2, 1], False)
    assert decisions["b"].shed == 1 and decisions["a"].models["m"].serving == (1,)  # NOTE: b rebalances

    state.report("b", report(clock, listening=False, v1=(AVAILABLE,), v2=(AVAILABLE,)))
    decisions = state.decide()
    assert [d.models["m"].serving for d in decisions.values()] == [(2,), (2,)]
    assert aspired(decisions["b"]) == [2]  # NOTE: b unloads 1 in the same window
    assert aspired(decisions["a"]) == [2, 1]  # NOTE: a keeps 1 until its own window
    assert decisions["a"].states["m"][1].state is UNLOADING


def test_a_broken_new_version_never_takes_the_serving_one_down():
    clock = Clock()
    state = serving_state(clock)
    state.set_aspired("m", [version(2)])
    state.decide()
    state.report("a", report(clock, listening=False, v1=(AVAILABLE,), v2=(END, "bad graph")))
    state.report("a", report(clock, v1=(AVAILABLE,), v2=(END, "bad graph")))
    state.report("b", report(clock, v1=(AVAILABLE,), v2=(END, "bad graph")))
    decisions = state.decide()
    assert decisions["a"].models["m"].serving == (1,) and decisions["a"].not_ready == {}
    assert (decisions["a"].states["m"][2].state, decisions["a"].states["m"][2].error) == (END, "bad graph")
    assert all(aspired(d) == [2, 1] for d in decisions.values())  # NOTE: failed loads are retried in place


def test_a_worker_that_joins_listens_only_once_it_holds_what_serves():
    clock = Clock()
    state = serving_state(clock)
    shed = state.decide()["a"].shed
    state.remove_worker("b")  # NOTE: killed
    state.report("c", WorkerReport())
    decisions = state.decide()
    assert (decisions["c"].rotation, aspired(decisions["c"])) == (False, [1])
    assert decisions["a"].rotation and decisions["a"].models["m"].serving == (1,)
    state.report("c", report(clock, listening=False, v1=(AVAILABLE,)))
    assert state.decide()["c"].rotation
    state.report("c", report(clock, v1=(AVAILABLE,)))
    assert state.decide()["a"].shed == shed + 1  # NOTE: a lets its connections go, to spread them over both


def test_one_worker_loads_in_place():
    clock = Clock()
    state = serving_state(clock, workers=("a",))
    state.set_aspired("m", [version(2)])
    decision = state.decide()["a"]
    assert (decision.rotation, aspired(decision), decision.models["m"].serving) == (True, [2, 1], (1,))


def test_a_model_deleted_and_created_again_is_a_new_incarnation_whose_old_states_do_not_count():
    clock = Clock()
    state = serving_state(clock)
    state.set_models({}, [])
    decisions = state.decide()
    assert decisions["a"].models == {} and decisions["a"].states["m"][1].state is UNLOADING
    state.set_models({"m": Model()}, [])
    state.set_aspired("m", [version(1)])
    decisions = state.decide()
    model = decisions["a"].models["m"]
    assert model.incarnation > 0 and model.serving == () and model.loading == {1: "is loading"}
    state.report("a", report(clock, v1=(AVAILABLE,)))
    state.report("b", report(clock, v1=(AVAILABLE,)))
    assert state.decide()["b"].models["m"].serving == (1,)


def test_a_model_removed_from_the_config_unloads_everywhere_and_ends():
    clock = Clock()
    state = serving_state(clock)
    assert state.decide()["a"].states["m"][1].state is AVAILABLE
    state.set_models({}, [])
    state.report("a", report(clock))
    state.report("b", report(clock))
    decisions = state.decide()
    assert decisions["a"].states["m"][1].state is END and decisions["a"].not_ready == {}


def test_the_paths_of_versions_no_longer_aspired_nor_held_are_forgotten():
    clock = Clock()
    state = serving_state(clock)
    for number in range(2, 6):
        state.set_aspired("m", [version(number)])
        state.report("a", report(clock, **{f"v{number}": (AVAILABLE,)}))
        state.report("b", report(clock, **{f"v{number}": (AVAILABLE,)}))
        state.decide()
    assert set(state._paths) == {ServableId("m", 5)}
