"""Growing the LM student during layer-aligned distillation (growth.* of `tinywave distill`)."""

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

from support.shards import speech_shards
from tinywave.cli import main
from tinywave.data.shards import ShardDataset
from tinywave.training.checkpoint import list_checkpoints, read_state
from tinywave.training.batches import BatchStream
from tinywave.distill.fused import use_qk_attention
from tinywave.distill.growth import GROWTH_LOG, StudentGrowth, plan_student_growth, read_history, resume_stage
from tinywave.distill.objective import DistillObjective, LossWeights, make_projections
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.distill.teacher import OnlineTeacher
from tinywave.training.trainer import fit, make_optimizer, train_step
from tinywave.files import load_jsonl
from tinywave.models.attention import decoder_layers
from tinywave.models.hf import new_llama, write_model_dir
from tinywave.models.student import build_student, uniform_layer_map
from tinywave.stacking import final_depth
from tinywave.text.vocab import train_bpe_tokenizer

LOSSES = ("loss", "ce", "kl", "hidden", "attn")



@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tokenizer, shards (16-token rows) and a 4-layer, 32-wide teacher folder."""
    root = tmp_path_factory.mktemp("growth")
    tok, layout = train_bpe_tokenizer(["tom went to the park and found a red ball"] * 5, vocab_size=40, n_hu=16, n_pi=2, n_st=2)
    tok.save_pretrained(root / "vocab")
    speech_shards(root / "shards", tok, layout, n_docs=24, n_units=16, seq_len=16, max_len=20)
    torch.manual_seed(0)
    write_model_dir(new_llama(len(tok), 4, 32, 4, 2, 64, max_positions=32), tok, root / "teacher")
    return root


# --- the plan: depths, schedule, layer map per stage ------------------------------------------

def default_pairs(n):
    return [(j, j) for j in range(n)]


def test_interleaved_plan_keeps_each_target_on_its_block():
    plan = plan_student_growth("interleaved", 2, "equal", 8, default_pairs(4), [0, 1, 2, 3])
    assert plan.depths == [2, 4] and plan.steps == [4] and plan.params == [{"every": 1}]
    assert plan.init_keep == [1, 3]  # initial layer i starts as the teacher layer its block is matched to
    assert plan.pairs == [[(0, 1), (1, 3)], [(1, 1), (3, 3)]]  # the last layer of each block keeps the target
    assert plan.dropped == [(0, 0), (2, 2)]
    three = plan_student_growth("interleaved", 3, "prop1", 12, default_pairs(6), list(range(6)))
    assert three.depths == [2, 4, 6] and three.steps == [2, 6]
    assert three.pairs == [[(0, 2), (1, 5)], [(1, 2), (3, 5)], [(2, 2), (5, 5)]]
    assert [three.stage_after(s) for s in (0, 1, 2, 5, 6, 12)] == [0, 0, 1, 1, 2, 2]


def test_top_and_gradual_plans_reach_the_final_depth():
    top = plan_student_growth("top", 3, "equal", 9, default_pairs(8), list(range(8)))
    assert top.depths == [2, 4, 8] and top.pairs[-1] == [(3, 3), (7, 7)]
    gradual = plan_student_growth("gradual", 2, "equal", 4, [(1, 5), (3, 7)], [4, 5, 6, 7], explicit=True)
    assert gradual.depths == [2, 4] and gradual.params == [{"n": 2}] and gradual.pairs == [[(0, 5), (1, 7)], [(1, 5), (3, 7)]]
    fixed = plan_student_growth("interleaved", 2, "equal", 4, default_pairs(3), [0, 1, 2], every=2)
    assert fixed.depths == [2, 3] and fixed.pairs == [[(0, 0), (1, 2)], [(0, 0), (2, 2)]]


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["top", "gradual", "middle", "interleaved"]), init=st.integers(1, 4), stages=st.integers(2, 4))
def test_every_plan_ends_at_n_layers_and_never_changes_teacher_layers(op, init, stages):
    n = final_depth(op, init, stages)
    keep = list(range(n))
    plan = plan_student_growth(op, stages, "equal", 20, default_pairs(n), keep)
    assert plan.depths[-1] == n and len(plan.depths) == stages and len(plan.steps) == stages - 1
    teachers = [[t for _, t in p] for p in plan.pairs]
    assert all(t == teachers[0] for t in teachers) and len(teachers[0]) == plan.depths[0]
    for depth, pairs in zip(plan.depths, plan.pairs):
        students = [s for s, _ in pairs]
        assert students == sorted(set(students)) and 0 <= students[0] and students[-1] < depth
    assert [keep[s] for s, _ in plan.pairs[-1]] == teachers[-1]  # each final layer keeps its own teacher layer
    if op == "interleaved":  # the target sits on the last layer of each block of `stages` layers
        assert [s for s, _ in plan.pairs[-1]] == [(i + 1) * stages - 1 for i in range(init)]


BAD_PLANS = {
    "unreachable depth": (dict(op="interleaved", stages=3), r"cannot end at student.n_layers=4: starting from 1..4 layers it ends at \[3, 6, 9, 12\]"),
    "unknown op": (dict(op="sideways"), r"growth.op='sideways' is not known"),
    "one stage": (dict(op="top", stages=1), r"growth.stages=1: growing needs at least 2 stages"),
    "unknown schedule": (dict(op="top", schedule="fast"), r"growth.schedule='fast' is not known"),
    "unknown optimizer": (dict(op="top", optimizer="keep"), r"growth.optimizer='keep' is not known"),
    "param of another op": (dict(op="top", every=2), r"growth.every=2 does not apply to growth.op=top"),
    "more stages than steps": (dict(op="interleaved", stages=4, total_steps=3), r"growth.stages=4 with train.steps=3"),
}


@pytest.mark.parametrize("case", sorted(BAD_PLANS))
def test_bad_growth_settings_are_refused(case):
    kw, message = BAD_PLANS[case]
    args = dict(op="interleaved", stages=2, schedule="equal", total_steps=8, final_pairs=default_pairs(4), keep=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=message):
        plan_student_growth(**{**args, **kw})


def test_explicit_layer_map_must_sit_on_target_layers():
    with pytest.raises(ValueError, match=r"layer_map pairs \[\[0, 0\]\] .* the layers that do are \[1, 3\]"):
        plan_student_growth("interleaved", 2, "equal", 8, [(0, 0), (3, 3)], [0, 1, 2, 3], explicit=True)


def test_resume_refuses_a_student_of_the_wrong_depth():
    plan = plan_student_growth("interleaved", 2, "equal", 8, default_pairs(4), [0, 1, 2, 3])
    assert resume_stage(plan, 2, 3, "ckpt") == 0 and resume_stage(plan, 4, 4, "ckpt") == 1  # step 4 ends with the growth
    with pytest.raises(ValueError, match=r"runs/x holds a 2-layer student but the growth plan \(2 -> 4 layers\) expects 4 layers after step 5"):
        resume_stage(plan, 2, 5, "runs/x")


# --- the hook on a real student --------------------------------------------------------------

def grown_setup(ws, optimizer="copy", weights=LossWeights(ce=1.0, kl=1.0, hidden=1.0, attn=1.0, temperature=2.0, chunk_size=16)):
    teacher = LlamaForCausalLM.from_pretrained(ws / "teacher")
    plan = plan_student_growth("interleaved", 2, "equal", 4, default_pairs(4), uniform_layer_map(4, 4), optimizer=optimizer)
    torch.manual_seed(0)
    student = build_student(teacher, 2, plan.init_keep)
    use_qk_attention(student)
    targets = OnlineTeacher(teacher, [1, 3], [1, 3], logits=True)
    objective = DistillObjective(student.train(), weights, plan.pairs[0], targets)
    stream = BatchStream(ShardDataset(ws / "shards"), 4, seed=0)
    return plan, objective, stream


def test_growth_step_copies_layers_state_and_keeps_teacher_targets(ws, tmp_path):
    plan, objective, stream = grown_setup(ws)
    optim = OptimSettings(lr=5e-3, warmup_steps=1)
    params = [p for p in objective.parameters() if p.requires_grad]
    opt, sched = make_optimizer(params, optim, 4)
    for step in (1, 2):
        train_step(objective, [stream.next()], lambda: torch.autocast("cpu", enabled=False), step)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    hook = StudentGrowth(plan, objective, optim, 4, tmp_path)
    originals = list(decoder_layers(objective.student))
    state_of = {id(p): opt.state[p]["exp_avg"].clone() for p in originals[0].parameters()}
    lr_before = [g["lr"] for g in opt.param_groups]
    assert hook(1, opt, sched) is None  # not a growth step
    new_params, new_opt, new_sched = hook(2, opt, sched)

    layers = decoder_layers(objective.student)
    assert len(layers) == 4 and objective.student.config.num_hidden_layers == 4
    assert layers[0] is originals[0] and layers[2] is originals[1]  # originals kept, each copy right after it
    for original, copy in ((layers[0], layers[1]), (layers[2], layers[3])):
        assert copy is not original
        assert all(torch.equal(a, b) for a, b in zip(original.state_dict().values(), copy.state_dict().values()))
    assert [layer.self_attn.layer_idx for layer in layers] == [0, 1, 2, 3]
    assert objective.pairs == [(1, 1), (3, 3)]  # each teacher layer stays on the last layer of its block
    assert {id(p) for p in new_params} == {id(p) for p in objective.parameters()}
    for p_orig, p_copy in zip(layers[0].parameters(), layers[1].parameters()):  # "copy": the copy starts at its original's moments
        torch.testing.assert_close(new_opt.state[p_copy]["exp_avg"], state_of[id(p_orig)])
        torch.testing.assert_close(new_opt.state[p_orig]["exp_avg"], state_of[id(p_orig)])
    assert [g["lr"] for g in new_opt.param_groups] == lr_before and new_sched.last_epoch == sched.last_epoch == 2
    event = load_jsonl(tmp_path / GROWTH_LOG)
    assert event == [{"step": 2, "op": "interleaved", "params": {"every": 1}, "depth": 4, "provenance": [0, 0, 1, 1],
                      "pairs": [[1, 1], [3, 3]], "optimizer": "copy"}]
    # the grown student is a plain HF model: saved and reloaded it computes the same logits
    write_model_dir(objective.student, _tok(ws), tmp_path / "grown")
    hook.save(tmp_path / "grown")
    assert read_history(tmp_path / "grown") == event
    reloaded = LlamaForCausalLM.from_pretrained(tmp_path / "grown").eval()
    ids = torch.tensor([[1, 20, 21, 22, 30, 2]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, objective.student.eval()(ids).logits, rtol=1e-5, atol=1e-5)


def test_remap_moves_pairs_and_their_projections():
    torch.manual_seed(0)
    student = new_llama(40, 2, 16, 2, 1, 32, max_positions=32)
    projections = make_projections([(0, 1), (1, 3)], 16, 32)
    objective = DistillObjective(student, LossWeights(ce=1.0), [(0, 1), (1, 3)], projections=projections)
    before = {s: objective.projections[str(s)] for s in (0, 1)}
    objective.remap_layers({0: 1, 1: 3})
    assert objective.pairs == [(1, 1), (3, 3)] and list(objective.projections) == ["1", "3"]
    assert objective.projections["1"] is before[0] and objective.projections["3"] is before[1]  # same trained weights


def _tok(ws):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ws / "vocab")


def test_reset_mode_starts_an_empty_optimizer_and_fit_grows_on_schedule(ws, tmp_path):
    plan, objective, stream = grown_setup(ws, "reset", LossWeights(ce=1.0, hidden=1.0, chunk_size=16))
    depths = []
    hook = StudentGrowth(plan, objective, OptimSettings(lr=5e-3, warmup_steps=1), 4, tmp_path)

    def watch(step, opt, sched):
        grown = hook(step, opt, sched)
        if grown is not None:
            assert len(grown[1].state) == 0  # reset: no moments carried
        depths.append(len(decoder_layers(objective.student)))
        return grown

    params = [p for p in objective.parameters() if p.requires_grad]
    run = RunSettings(out=str(tmp_path), steps=4, ckpt_every=10, report_to=[])
    result = fit(objective, params, stream, OptimSettings(lr=5e-3, warmup_steps=1), run, lambda d: None, config={}, growth=watch)
    assert result.finished and depths == [2, 4, 4, 4]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    # the copies trained on after the growth: they no longer equal their originals
    layers = decoder_layers(objective.student)
    assert not torch.equal(layers[0].mlp.up_proj.weight, layers[1].mlp.up_proj.weight)


# --- through the CLI: interrupted before the growth, resumed across it ------------------------

def distill(ws, out, *extra):
    base = [f"teacher.dir={ws / 'teacher'}", f"data.shards={ws / 'shards'}", f"train.out={out}", "student.n_layers=4",
            "growth.op=interleaved", "growth.stages=2", "train.steps=4", "data.batch_size=4", "loss.chunk_size=16",
            "optim.lr=5e-3", "optim.warmup_steps=1", "train.ckpt_every=1", "train.report_to=[]"]
    return main(["distill", *base, *extra])


def curve(run_dir):
    return [{k: r[k] for k in ("step", *LOSSES, "lr") if k in r} for r in load_jsonl(run_dir / "train_log.jsonl")]


@pytest.mark.slow
def test_cli_resume_across_a_growth_step_matches_an_uninterrupted_run(ws, tmp_path):
    assert distill(ws, tmp_path / "full") == 0
    assert distill(ws, tmp_path / "cut", "train.stop_after_steps=1") == 0  # stops in stage 1, before growing
    ckpt = list_checkpoints(tmp_path / "cut")[-1]
    assert ckpt.name == "step_00000001" and LlamaForCausalLM.from_pretrained(ckpt).config.num_hidden_layers == 2
    assert read_history(ckpt) == [] and not (tmp_path / "cut" / "model").exists()
    assert distill(ws, tmp_path / "cut", "train.resume=true", "train.stop_after_steps=2") == 0  # steps 2-3, grows after 2
    assert distill(ws, tmp_path / "cut", "train.resume=true") == 0  # resumes from the grown step-3 checkpoint
    full, cut = curve(tmp_path / "full"), curve(tmp_path / "cut")
    assert [r["step"] for r in cut] == [1, 2, 3, 4] and set(LOSSES) <= set(full[0])
    for a, b in zip(full, cut):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), (a["step"], key)
    for run in ("full", "cut"):
        events = load_jsonl(tmp_path / run / GROWTH_LOG)
        assert [(e["step"], e["depth"], e["provenance"], e["pairs"]) for e in events] == [(2, 4, [0, 0, 1, 1], [[1, 1], [3, 3]])]
        assert read_state(list_checkpoints(tmp_path / run)[-1])["step"] == 4
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = LlamaForCausalLM.from_pretrained(tmp_path / "cut" / "model")
    assert model.config.num_hidden_layers == 4 and len(model.model.layers) == 4


def test_cli_refuses_a_bad_growth_config(ws, tmp_path, capsys):
    cases = {
        ("growth.stages=3",): r"growth.op=interleaved growth.stages=3 cannot end at student.n_layers=4",
        ("growth.op=top", "growth.every=2"): r"growth.every=2 does not apply to growth.op=top",
        ("layer_map=[[0, 0], [3, 3]]",): r"layer_map pairs \[\[0, 0\]\] sit on final student layers that carry no target",
        ("growth.optimizer=keep",): r"growth.optimizer='keep' is not known; choose one of \['reset', 'copy'\]",
    }
    for extra, message in cases.items():
        assert distill(ws, tmp_path / "run", *extra) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert list_checkpoints(tmp_path / "run") == []
