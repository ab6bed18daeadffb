"""The split over a real wire (nopeek_repro.wire): the same numbers as in one process, what crosses, faults.

The multi-process tests start real processes on localhost (one torch thread each, tiny sizes) and
always kill what is left of them."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from nopeek_repro import config, runtime, train, wire
from nopeek_repro.config import ModelParams
from nopeek_repro.defences import RunSpec

PARAMS = config.TrainParams(seeds=[0], epochs=2, batch_size=64, lr=1e-3, threads=1)
MODEL = ModelParams(cut_layer="block2")  # the default run's cut: Z = 32 x 7 x 7
FAULT_TIMEOUT = 4.0  # seconds before a silent peer is lost, in the fault tests
BOUND = FAULT_TIMEOUT + 8.0  # what the survivor may take after the fault (a busy two-core machine)


# ---- no processes ------------------------------------------------------------------------------


def test_header_round_trip():
    z = torch.zeros(5, 32, 7, 7)
    h = wire.encode_header(12, z)
    assert h.dtype == torch.int64 and h.numel() * h.element_size() == wire.HEADER_BYTES == 64
    assert h.tolist() == [12, 0, 4, 5, 32, 7, 7, 0]
    assert wire.decode_header(h) == (12, torch.float32, (5, 32, 7, 7))
    assert wire.decode_header(wire.encode_header(1, z.double()[:, 0, 0])) == (1, torch.float64, (5, 7))
    with pytest.raises(ValueError, match="dimensions"):
        wire.encode_header(1, torch.zeros(1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="dtype"):
        wire.encode_header(1, torch.zeros(2, dtype=torch.int32))


def test_one_client_draws_the_batches_of_train_train():
    """No index tensor crosses: both sides draw the order from the seed, as train.train does."""
    n, bs, seed = 150, 32, 7
    parts = wire.shards(n, 1)
    assert torch.equal(parts[0], torch.arange(n))
    ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    for _ in range(3):
        (plan,) = wire.epoch_plan(parts, bs, ours)
        ref = runtime.batches(n, bs, theirs)
        assert len(plan) == len(ref) and all(torch.equal(a, b) for a, b in zip(plan, ref))


def test_shards_and_handovers():
    parts = wire.shards(10, 3)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(ValueError, match="2 rows each"):
        wire.shards(5, 3)
    assert wire.handovers(2, 2, "relay") == [(1, 1, 2), (1, 2, 1), (2, 1, 2), (2, 2, 1)]
    assert wire.handovers(3, 1, "relay") == [(1, 1, 2), (1, 2, 3), (1, 3, 1), (1, 3, 2)]
    assert wire.handovers(3, 2, "none") == [] and wire.handovers(1, 5, "relay") == []
    with pytest.raises(ValueError, match="handover"):
        wire.handovers(2, 1, "broadcast")


def test_expected_bytes_formula():
    # 97 rows in batches of 32: 32 + 32 + 32, the last batch of 1 is dropped (DCOR needs 2)
    e = wire.expected_bytes((32, 7, 7), n_train=97, batch_size=32, epochs=2)
    per_row = 32 * 7 * 7 * 4
    assert e["steps"] == 6
    assert e["z_bytes"] == e["grad_bytes"] == per_row * 96 * 2 == per_row * 32 * 6  # elements x 4 x batch x steps
    assert e["header_bytes"] == 64 * 6 and e["handover_bytes"] == 0 and e["messages"] == 18
    r = wire.expected_bytes((4,), 40, 10, epochs=2, clients=2, handover="relay", state_bytes=1000, state_tensors=3)
    assert r["steps"] == 8 and r["handover_bytes"] == 4 * 1000 and r["messages"] == 3 * 8 + 4 * 3


# ---- real processes on localhost ---------------------------------------------------------------


def _z_shape(split):
    return wire.z_shape(MODEL, split.image_shape, split.n_classes)


def _assert_traffic_is_the_formula(result, split, clients, handover):
    state_bytes, state_tensors = wire.client_state_size(MODEL, split.image_shape, split.n_classes)
    expected = wire.expected_bytes(
        _z_shape(split),
        len(split.y_train),
        PARAMS.batch_size,
        PARAMS.epochs,
        clients,
        handover,
        state_bytes,
        state_tensors,
    )
    measured = result.traffic.sum()
    for key in ("steps", "z_bytes", "header_bytes", "grad_bytes", "handover_bytes", "messages"):
        assert int(measured[key]) == expected[key], key  # exactly
    assert int(measured["bytes_up"]) == expected["z_bytes"] + expected["header_bytes"]  # nothing else goes up
    assert int(measured["bytes_down"]) == expected["grad_bytes"]
    # the clients' own counts (at the sender) agree with the server's (at the receiver)
    for key in ("z_bytes", "header_bytes", "grad_bytes"):
        assert sum(int(s[key].sum()) for s in result.client_stats) == int(measured[key]), key
    assert result.report_bytes == clients * PARAMS.epochs * len(wire.REPORT_FIELDS) * 8
    assert (result.traffic[["server_comm_s", "server_compute_s", "clients_compute_s", "wall_s"]] > 0).all().all()


@pytest.mark.slow
@pytest.mark.parametrize("spec", [RunSpec(), RunSpec("nopeek", alpha_dcor=5.0)], ids=["baseline", "nopeek"])
def test_one_client_over_the_wire_is_bitwise_the_in_process_run(tiny_split, tmp_path, spec):
    result = wire.run_local(tiny_split, spec, PARAMS, MODEL, seed=3, clients=1, timeout=20, out=tmp_path, wait_s=180)
    ref = train.train(spec, tiny_split, PARAMS, MODEL, seed=3, progress=False)
    for name, t in ref.client.net.state_dict().items():
        assert torch.equal(t, result.clients[0][name]), name
    for name, t in ref.server.net.state_dict().items():
        assert torch.equal(t, result.server[name]), name
    assert result.history.epoch.tolist() == [1, 2]
    assert result.history.train_ce.tolist() == ref.history.train_ce.tolist()  # bitwise
    assert result.history.train_dcor.tolist() == ref.history.train_dcor.tolist()
    _assert_traffic_is_the_formula(result, tiny_split, 1, "none")
    # the per-epoch evaluation, after training, on the gathered weights: the in-process run's last epoch
    client, server = wire.parties(result, tiny_split, spec, PARAMS, MODEL, seed=3)
    ev = train.evaluate(client, server, tiny_split, dtype=torch.float32, full=False)
    assert ev["test_accuracy"] == ref.history.test_accuracy.iloc[-1]
    assert ev["leakage_dcor"] == ref.history.test_dcor.iloc[-1]


@pytest.mark.slow
@pytest.mark.parametrize("handover", ["relay", "none"])
def test_two_clients_take_turns(tiny_split, tmp_path, handover):
    spec = RunSpec("nopeek", alpha_dcor=3.0)
    result = wire.run_local(
        tiny_split, spec, PARAMS, MODEL, seed=0, clients=2, handover=handover, timeout=20, out=tmp_path, wait_s=180
    )
    initial = train.make_parties(spec, MODEL, tiny_split, PARAMS.lr, PARAMS.alpha_task, seed=0)[0].net.state_dict()
    for stats, weights in zip(result.client_stats, result.clients):
        assert (stats.steps > 0).all() and (stats.dcor_sum > 0).all()  # every client trained, every epoch
        assert any(not torch.equal(weights[k], initial[k]) for k in initial)
    same = all(torch.equal(result.clients[0][k], result.clients[1][k]) for k in initial)
    assert same == (handover == "relay")
    assert all(math.isfinite(v) for v in result.history.train_ce) and len(result.history) == PARAMS.epochs
    _assert_traffic_is_the_formula(result, tiny_split, 2, handover)


def _fault_run(tiny_split, tmp_path, **kw):
    params = config.TrainParams(seeds=[0], epochs=50, batch_size=32, lr=1e-3, threads=1)  # long enough to be cut
    kw.setdefault("timeout", FAULT_TIMEOUT)
    return wire.start_local(tiny_split, RunSpec(), params, MODEL, seed=0, out=tmp_path, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0], ids=["client dies", "server dies"])
def test_a_party_that_dies_stops_the_other_with_one_message(tiny_split, tmp_path, victim):
    run = _fault_run(tiny_split, tmp_path, die_at=(victim, 4))
    try:
        codes = run.wait(90)
        survivor = 1 - victim
        assert codes[victim] == -9  # killed (SIGKILL) at step 4
        assert codes[survivor] == 1, run.log(survivor)
        assert run.exited[survivor] - run.exited[victim] < BOUND
        messages = [ln for ln in run.log(survivor).splitlines() if ln.strip()]
        assert len(messages) == 1, messages  # one clear message, nothing else
        assert messages[0].startswith(f"wire: {wire.party(victim)} stopped answering")
    finally:
        run.kill()


@pytest.mark.slow
def test_a_hung_party_is_declared_lost_within_the_timeout(tiny_split, tmp_path):
    run = _fault_run(tiny_split, tmp_path, stop_at=(1, 4))  # the client stops (SIGSTOP) at step 4
    try:
        deadline = time.monotonic() + 60
        while "hanging at step 4" not in run.log(1) and time.monotonic() < deadline:
            time.sleep(0.05)
        hung = time.monotonic()
        codes = run.wait(BOUND + 10, ranks=[0])
        assert codes[1] is None  # still there, stopped
        assert codes[0] == 1 and run.exited[0] - hung < BOUND
        assert run.log(0).strip() == "wire: client 1 (rank 1) stopped answering (no heartbeat for 4 s)"
    finally:
        run.kill()


@pytest.mark.slow
def test_a_port_in_use_and_a_bad_address_give_one_message(tiny_split, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = _fault_run(tiny_split, tmp_path / "port", port=port)
        try:
            codes = run.wait(30, ranks=[0])
            assert codes[0] == 1 and run.exited[0] - run.started < 30
            assert run.log(0).strip() == (
                f"wire: port {port} is already in use on this machine (another run or program holds it): "
                "choose another --master-port / MASTER_PORT"
            )
        finally:
            run.kill()
    run = _fault_run(tiny_split, tmp_path / "addr", master_addr="no-such-host.invalid", timeout=2.0)
    try:
        codes = run.wait(60)
        assert codes == [1, 1]
        for rank in (0, 1):
            assert run.log(rank).strip().startswith("wire: could not reach the rendezvous at no-such-host.invalid:")
    finally:
        run.kill()


@pytest.mark.slow
def test_torchrun_runs_the_cli_and_prints_the_table(root):
    port = wire.free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port)]
    cmd += ["-m", "nopeek_repro.wire", "--clients", "1", "--epochs", "1", "--seed", "0", "--n-train", "96"]
    cmd += ["--n-test", "32", "--batch-size", "32", "--alpha-dcor", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["epoch", "train_ce", "train_dcor"]
    header = next(ln for ln in lines if ln.split()[:3] == ["epoch", "steps", "z_bytes"])
    row = lines[lines.index(header) + 1].split()
    z = dict(zip(header.split(), row))
    assert int(z["steps"]) == 3 and int(z["z_bytes"]) == 96 * 32 * 7 * 7 * 4 and int(z["header_bytes"]) == 3 * 64
    assert "reports after training: 88 bytes from 1 client(s)" in proc.stdout


# ---- two clients against an in-process reference of the same schedule -------------------------


class _Rng:
    """Each wire party is its own process with its own global torch RNG (the server's dropout draws from
    it): the reference keeps one RNG state per party and swaps it in around that party's work."""

    def __init__(self, states):
        self.states = states

    def run(self, rank, fn, *args, **kw):
        torch.set_rng_state(self.states[rank])
        try:
            return fn(*args, **kw)
        finally:
            self.states[rank] = torch.get_rng_state()


def _copy_weights(src, dst):
    """A relay hand-over: the weights only, copied into the receiver's tensors (its optimiser stays its own)."""
    with torch.no_grad():
        for name, t in dst.net.state_dict().items():
            t.copy_(src.net.state_dict()[name])


def _reference_run(split, spec, params, model, seed, clients, handover):
    """The wire's K-client schedule in one process (wire.Party._setup, _serve and _train_client step for step)."""
    parties, states = [], []
    for rank in range(clients + 1):  # every process: seed, build its own pair, keep its own party
        runtime.set_determinism(seed, params.threads)
        client, server = train.make_parties(
            spec,
            model,
            split,
            params.lr,
            params.alpha_task,
            seed,
            params.device,
            "euclidean",
            params.client_optimizer,
            params.client_lr,
        )
        parties.append(server if rank == 0 else client)
        states.append(torch.get_rng_state())
    rng = _Rng(states)
    server, cl = parties[0], parties[1:]
    schedules = [
        torch.optim.lr_scheduler.MultiStepLR(p.optimizer, milestones=list(params.lr_milestones), gamma=params.lr_gamma)
        for p in parties
    ]
    n_train = len(split.y_train)
    parts = wire.shards(n_train, clients)
    order = torch.Generator().manual_seed(seed)
    ramp_steps = params.alpha_ramp * wire.steps_per_epoch(n_train, clients, params.batch_size)
    relay = handover == "relay" and clients > 1
    turns = [(e, c) for e in range(1, params.epochs + 1) for c in range(1, clients + 1)]
    step_no, history = 0, []
    for epoch in range(1, params.epochs + 1):
        ce_sum, steps, dcor_sums = 0.0, 0, [0.0] * clients
        for c, turn in enumerate(wire.epoch_plan(parts, params.batch_size, order), 1):
            client = cl[c - 1]
            i = turns.index((epoch, c))
            if relay and i > 0:
                _copy_weights(cl[turns[i - 1][1] - 1], client)
            for j, idx in enumerate(turn):
                step_no += 1
                rows = parts[c - 1][idx]
                if ramp_steps > 0:
                    client.alpha_dcor = spec.alpha_dcor * min(1.0, step_no / ramp_steps)
                z = rng.run(c, client.forward, split.x_train[rows])
                grad = rng.run(0, server.train_step, z, split.y_train[rows])
                ce_sum += server.last.loss / params.alpha_task
                steps += 1
                st = rng.run(c, client.backward, grad, diagnose=j == len(turn) - 1)
                dcor_sums[c - 1] += st.dcor
        if relay and epoch == params.epochs:  # the last client's final weights to every other client
            last = turns[-1][1]
            for other in range(1, clients + 1):
                if other != last:
                    _copy_weights(cl[last - 1], cl[other - 1])
        for s in schedules:
            s.step()
        history.append({"epoch": epoch, "train_ce": ce_sum / steps, "train_dcor": sum(dcor_sums) / steps})
    return server, cl, history


@pytest.mark.slow
@pytest.mark.parametrize("handover", ["relay", "none"])
def test_two_clients_match_an_in_process_reference(tiny_split, tmp_path, handover):
    """K = 2 over the wire is bitwise the same schedule run in one process: weights of every party, per-epoch CE
    and DCOR."""
    spec = RunSpec("nopeek", alpha_dcor=3.0)
    params = config.TrainParams(seeds=[0], epochs=2, batch_size=32, lr=1e-3, threads=1)
    result = wire.run_local(
        tiny_split, spec, params, MODEL, seed=1, clients=2, handover=handover, timeout=20, out=tmp_path, wait_s=180
    )
    server, clients, history = _reference_run(tiny_split, spec, params, MODEL, 1, 2, handover)
    for name, t in server.net.state_dict().items():
        assert torch.equal(t, result.server[name]), name
    assert len(result.clients) == 2
    for client, weights in zip(clients, result.clients):
        for name, t in client.net.state_dict().items():
            assert torch.equal(t, weights[name]), name
    same = all(torch.equal(result.clients[0][k], result.clients[1][k]) for k in result.clients[0])
    assert same == (handover == "relay")
    assert result.history.epoch.tolist() == [1, 2]
    assert result.history.train_ce.tolist() == [r["train_ce"] for r in history]  # bitwise
    assert result.history.train_dcor.tolist() == [r["train_dcor"] for r in history]
