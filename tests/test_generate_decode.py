"""Our decoding loop against itself (batched, streamed) and against transformers' generate()."""

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM, LogitsProcessorList, StoppingCriteriaList

from support.audio import espeak_wav
from support.models import tiny_llama, tiny_model_dir, tiny_tokenizer
from support.speech import StandInSpeechTokenizer
from tinywave.generate.decode import Sampling, decode, next_tokens
from tinywave.generate.forcing import ModalityLogitsProcessor, SpeechDurationCriteria
from tinywave.generate.prompt import PromptItem
from tinywave.generate.speechlm import GenerationOptions, SpeechLM
from tinywave.text.vocab import layout_from_tokenizer
from tinywave.vocoder.backends import HifiGanVocoder
from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)


@pytest.fixture(scope="module")
def lm():
    tok, lay = tiny_tokenizer()
    model = tiny_llama(tokenizer=tok, layers=2, width=32, extra_rows=3, lm_head_scale=8.0)
    torch.manual_seed(1)
    voc = HifiGanVocoder(UnitHiFiGAN(small_config(lay.n_hu, 640, channels=16, embedding_dim=16, num_speakers=2)))
    return SpeechLM(model, tok, speech_tokenizer=StandInSpeechTokenizer(n_units=lay.n_hu), vocoder=voc)


def _rows(lay):
    hu = lay.hu_offset
    return [[1, lay.speech_id, hu + 3, hu + 5, hu + 5, hu + 9], [1, 10, 11, 12, lay.speech_id], [1, lay.speech_id],
            [1, lay.text_id, 20, 21, 22, 23, 24, 25, 26, lay.speech_id, hu + 1]]


@pytest.mark.parametrize("modality", ["speech", "text", "arbitrary"])
def test_batched_equals_per_item_greedy(lm, modality):
    proc = lm.forcing(modality)
    kw = dict(pad_id=lm.pad_id, eos_id=lm.tokenizer.eos_token_id, processors=[proc])
    rows = _rows(lm.layout)
    batched = decode(lm.model, rows, 24, **kw)
    single = [decode(lm.model, [r], 24, **kw)[0] for r in rows]
    assert batched == single
    assert all(len(b) > 0 for b in batched)


def test_our_loop_equals_hf_generate_with_the_same_processor_and_criteria(lm):
    proc = lm.forcing("speech")
    for row in _rows(lm.layout):
        crit = SpeechDurationCriteria(lm.layout, max_seconds=0.6, rate=25.0, prompt_length=len(row))
        ours = decode(lm.model, [row], 30, pad_id=lm.pad_id, eos_id=lm.tokenizer.eos_token_id, processors=[proc], stopping=[crit])[0]
        ref = lm.model.generate(torch.tensor([row]), attention_mask=torch.ones(1, len(row), dtype=torch.long), max_new_tokens=30,
                                do_sample=False, logits_processor=LogitsProcessorList([proc]),
                                stopping_criteria=StoppingCriteriaList([crit]), eos_token_id=lm.tokenizer.eos_token_id,
                                pad_token_id=lm.pad_id)
        assert ours == ref[0, len(row):].tolist()


def test_streaming_yields_the_same_tokens_as_generate(lm, tmp_path):
    wav = espeak_wav(tmp_path / "p.wav", "hello there")
    items = [PromptItem("audio", str(wav)), PromptItem("text", "the cat")]
    for modality, sampling in (("speech", Sampling()), ("arbitrary", Sampling(greedy=False, temperature=1.2, top_p=0.9, seed=3))):
        options = GenerationOptions(max_new_tokens=40, sampling=sampling, chunk_units=4)
        [full] = lm.generate([items], modality, options)
        events = list(lm.stream(items, modality, options))
        assert [e.token for e in events if e.kind == "token"] == full.ids
        streamed = events[-1].result
        assert events[-1].kind == "done" and streamed.transcript == full.transcript and streamed.runs == full.runs
        chunks = [e.audio for e in events if e.kind == "audio"]
        if full.audio is not None and len(full.audio):
            assert len(chunks) >= 1 and sum(len(c) for c in chunks) == len(full.audio)  # same durations, chunked


def test_batched_generation_and_samples(lm):
    prompts = [[PromptItem("text", "the cat")], [("tokens", "[Hu1][Hu2][Hu3]")]]  # items or (kind, content) tuples
    greedy = lm.generate(prompts, "speech", GenerationOptions(max_new_tokens=12, num_samples=2, batch_size=3))
    assert len(greedy) == 4 and greedy[0].ids == greedy[1].ids and greedy[2].ids == greedy[3].ids
    assert all(set(g.ids) <= set(range(lm.layout.hu_offset, lm.layout.pi_offset)) | {lm.tokenizer.eos_token_id} for g in greedy)
    opts = GenerationOptions(max_new_tokens=12, num_samples=3, sampling=Sampling(greedy=False, temperature=1.5, seed=7))
    a = lm.generate(prompts[:1], "speech", opts)
    b = lm.generate(prompts[:1], "speech", opts)
    assert [g.ids for g in a] == [g.ids for g in b]  # seeded
    assert len({tuple(g.ids) for g in a}) > 1  # samples differ


def test_speech_output_stops_at_max_seconds_and_is_vocoded(lm):
    opts = GenerationOptions(max_new_tokens=100, max_seconds=0.4, allow_eos=False)
    [g] = lm.generate([[PromptItem("text", "the cat")]], "speech", opts)
    assert g.stop == "max_seconds" and len(g.ids) == 10  # 0.4 s x 25 units/s, every token a [Hu]
    assert g.audio is not None and len(g.audio) >= 10 * 640 and np.isfinite(g.audio).all()


def test_top_k_and_top_p_sample_only_from_the_nucleus():
    g = torch.Generator().manual_seed(0)
    scores = torch.tensor([[5.0, 4.0, 3.0, -1.0, -2.0]]).repeat(200, 1)
    assert set(next_tokens(scores, Sampling(greedy=False, top_k=2), g).tolist()) == {0, 1}
    probs = scores[0].softmax(-1)  # 0.66, 0.24, 0.09, ...: top_p 0.8 keeps {0, 1}
    assert probs[0] < 0.8 < probs[:2].sum()
    assert set(next_tokens(scores, Sampling(greedy=False, top_p=0.8), g).tolist()) == {0, 1}


def test_prompt_longer_than_context_is_an_error(tmp_path):
    tok, _ = tiny_tokenizer()
    lm = SpeechLM(tiny_llama(tokenizer=tok, max_positions=16, lm_head_scale=8.0), tok)
    with pytest.raises(ValueError, match="longer than the model's context of 16"):
        lm.generate([[PromptItem("tokens", "[Hu1]" * 20)]], "speech")


def test_exported_directory_generates_with_plain_transformers(tmp_path):
    path = tiny_model_dir(tmp_path / "student", layers=2, width=32, lm_head_scale=8.0)
    model = LlamaForCausalLM.from_pretrained(str(path)).eval()  # nothing of ours to load it
    tok = AutoTokenizer.from_pretrained(str(path))
    lay = layout_from_tokenizer(tok)
    proc = ModalityLogitsProcessor.for_modality(lay, "speech", model.config.vocab_size, eos_id=tok.eos_token_id, allow_eos=False)
    prompt = tok("[Speech][Hu3][Hu4]", add_special_tokens=False, return_tensors="pt")["input_ids"]
    prompt = torch.cat([torch.tensor([[tok.bos_token_id]]), prompt], dim=1)
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=16, do_sample=True, top_k=0,
                         logits_processor=LogitsProcessorList([proc]), pad_token_id=tok.pad_token_id)
    new = out[0, prompt.shape[1]:].tolist()
    assert len(new) == 16 and all(lay.hu_offset <= i < lay.size for i in new)
    ours = SpeechLM(model, tok).generate([[PromptItem("tokens", "[Hu3][Hu4]")]], "speech",
                                         GenerationOptions(max_new_tokens=16, allow_eos=False))[0]
    greedy = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=16, do_sample=False,
                            logits_processor=LogitsProcessorList([proc]), pad_token_id=tok.pad_token_id)
    assert ours.ids == greedy[0, prompt.shape[1]:].tolist()


@pytest.mark.parametrize("dtype, int8", [("bf16", False), ("fp32", True)])
def test_bf16_and_int8_models_decode_under_forcing(dtype, int8):
    import copy

    from tinywave.generate.deploy import prepare

    tok, lay = tiny_tokenizer()
    fp32 = tiny_llama(tokenizer=tok, layers=2, width=32, lm_head_scale=8.0)
    model = prepare(copy.deepcopy(fp32), dtype, int8)
    assert next(model.parameters()).dtype == (torch.bfloat16 if dtype == "bf16" else torch.float32) or int8
    if int8:
        assert model.model.layers[0].mlp.up_proj.qweight.dtype == torch.int8
    lm = SpeechLM(model, tok)
    [g] = lm.generate([[PromptItem("text", "the cat")]], "speech", GenerationOptions(max_new_tokens=10, allow_eos=False))
    assert len(g.ids) == 10 and all(lay.hu_offset <= i < lay.size for i in g.ids)
    with pytest.raises(ValueError, match="needs an fp32 model"):
        prepare(copy.deepcopy(fp32), "bf16", int8=True)
