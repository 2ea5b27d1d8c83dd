"""Talker prompts: the embeddings one utterance starts from (batch of one).

This mirrors `Qwen3TTSForConditionalGeneration.generate` of `qwen-tts` 0.1.1 for a single
utterance, so our decode loop starts from exactly the prompt the library would build:

    [instruct]  <|im_start|>assistant\\n   codec tags (+ speaker)   first text token / whole text
    (user turn)  (3 role tokens)            think, language, pad/bos

Two text modes exist, as in the library:
- non-streaming text (the library's default for built-in and designed voices): all text tokens
  are in the prompt and every generated frame is fed `tts_pad`;
- streaming text (the default for cloned voices): the prompt holds the first text token and
  frame *i* is fed text token *i + 1* (then `tts_eos`, then `tts_pad`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ClonePrompt:
    """What a cloned voice adds to the prompt (see voices for how it is made and cached)."""

    speaker_embedding: torch.Tensor  # [hidden] x-vector of the reference clip
    ref_codes: torch.Tensor | None = None  # [frames, 16] codes of the reference clip (ICL mode)
    ref_text: str | None = None  # transcript of the reference clip (ICL mode)

    @property
    def icl(self) -> bool:
        return self.ref_codes is not None and bool(self.ref_text)


@dataclass
class Prompt:
    embeds: torch.Tensor  # [1, T, hidden]: prefilled in one talker forward
    trailing_text: torch.Tensor  # [1, N, hidden]: added to the input of generated frame i < N
    tts_pad: torch.Tensor  # [1, 1, hidden]: added to the input of every later frame
    context_codes: torch.Tensor | None = None  # codes the vocoder should see before ours (ICL)


def chat_text(text: str) -> str:
    return f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n"


def ref_chat_text(text: str) -> str:
    return f"<|im_start|>assistant\n{text}<|im_end|>\n"


def instruct_chat_text(instruct: str) -> str:
    return f"<|im_start|>user\n{instruct}<|im_end|>\n"


class PromptBuilder:
    """Builds `Prompt`s from the model's embedding tables and text projection."""

    def __init__(self, model, tokenizer, dtype: torch.dtype = torch.float32) -> None:
        self.model = model  # Qwen3TTSForConditionalGeneration
        self.tokenizer = tokenizer  # the checkpoint's processor (wraps its Qwen2 tokenizer)
        self.talker = model.talker
        self.cfg = model.config.talker_config
        self.dtype = dtype  # activations of the talker

    # -- small helpers ------------------------------------------------------------------
    def ids(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text=text, return_tensors="pt", padding=True)["input_ids"]
        return ids.unsqueeze(0) if ids.dim() == 1 else ids

    def text_embed(self, ids: torch.Tensor) -> torch.Tensor:
        table = self.talker.get_text_embeddings()
        return self.talker.text_projection(table(ids).to(self.dtype))

    def codec_embed(self, ids) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor):
            ids = torch.tensor([ids], dtype=torch.long)
        return self.talker.get_input_embeddings()(ids).to(self.dtype)

    def language_id(self, language: str, speaker: str | None) -> int | None:
        lang = language.lower()
        language_id = None
        if lang != "auto":
            language_id = self.cfg.codec_language_id[lang]
        if speaker and lang in ("chinese", "auto"):
            dialect = (self.cfg.spk_is_dialect or {}).get(speaker.lower(), False)
            if dialect:
                language_id = self.cfg.codec_language_id[dialect]
        return language_id

    # -- the prompt -----------------------------------------------------------------------
    @torch.inference_mode()
    def build(
        self,
        text: str,
        *,
        language: str = "auto",
        speaker: str | None = None,
        instruct: str | None = None,
        clone: ClonePrompt | None = None,
        streaming_text: bool = False,
    ) -> Prompt:
        cfg, conf = self.cfg, self.model.config
        input_id = self.ids(chat_text(text))
        tts_bos, tts_eos, tts_pad = self.text_embed(
            torch.tensor([[conf.tts_bos_token_id, conf.tts_eos_token_id, conf.tts_pad_token_id]])
        ).chunk(3, dim=1)

        # speaker: built-in id, a clone's x-vector, or none (designed voices)
        speaker_embed = None
        if clone is not None:
            speaker_embed = clone.speaker_embedding.to(tts_pad.dtype)
        elif speaker:
            speaker_embed = self.codec_embed(cfg.spk_id[speaker.lower()])

        language_id = self.language_id(language, None if clone else speaker)
        if language_id is None:
            tags = [cfg.codec_nothink_id, cfg.codec_think_bos_id, cfg.codec_think_eos_id]
        else:
            tags = [cfg.codec_think_id, cfg.codec_think_bos_id, language_id, cfg.codec_think_eos_id]
        codec_parts = [self.codec_embed(torch.tensor([tags]))]
        if speaker_embed is not None:
            codec_parts.append(speaker_embed.view(1, 1, -1))
        codec_parts.append(self.codec_embed(torch.tensor([[cfg.codec_pad_id, cfg.codec_bos_id]])))
        codec = torch.cat(codec_parts, dim=1)

        role = self.text_embed(input_id[:, :3])  # <|im_start|>assistant\n
        pads = torch.cat((tts_pad.expand(-1, codec.shape[1] - 2, -1), tts_bos), dim=1)
        parts = [role, pads + codec[:, :-1]]
        context_codes = None

        if clone is not None and clone.icl:
            icl, trailing = self._icl(input_id[:, 3:-5], clone, tts_pad, tts_eos, streaming_text)
            parts.append(icl)
            context_codes = clone.ref_codes
        elif streaming_text:
            parts.append(self.text_embed(input_id[:, 3:4]) + codec[:, -1:])
            trailing = torch.cat((self.text_embed(input_id[:, 4:-5]), tts_eos), dim=1)
        else:
            body = input_id[:, 3:-5]
            pad_ids = torch.full((1, body.shape[1] + 1), cfg.codec_pad_id, dtype=torch.long)
            body_embed = torch.cat((self.text_embed(body), tts_eos), dim=1)
            parts.append(body_embed + self.codec_embed(pad_ids))
            parts.append(tts_pad + self.codec_embed(torch.tensor([[cfg.codec_bos_id]])))
            trailing = tts_pad

        if instruct:
            parts.insert(0, self.text_embed(self.ids(instruct_chat_text(instruct))))
        return Prompt(torch.cat(parts, dim=1), trailing, tts_pad, context_codes)

    def _icl(self, text_id, clone: ClonePrompt, tts_pad, tts_eos, streaming_text: bool):
        """In-context cloning: reference transcript + target text, against reference codes."""
        cfg = self.cfg
        assert clone.ref_text is not None and clone.ref_codes is not None  # clone.icl
        ref_id = self.ids(ref_chat_text(clone.ref_text))[:, 3:-2]
        text = torch.cat([self.text_embed(torch.cat([ref_id, text_id], dim=-1)), tts_eos], dim=1)
        ref_codes = clone.ref_codes
        tables = self.talker.code_predictor.get_input_embeddings()
        # [frames, 16, hidden] summed over the codebooks, in the library's order of operations
        codec = torch.cat(
            [self.codec_embed(ref_codes[:, :1])]
            + [tables[i - 1](ref_codes[:, i:i + 1]).to(self.dtype)
               for i in range(1, cfg.num_code_groups)],
            dim=1,
        ).sum(1).unsqueeze(0)
        codec = torch.cat([self.codec_embed(torch.tensor([[cfg.codec_bos_id]])), codec], dim=1)
        n_text, n_codec = text.shape[1], codec.shape[1]
        if not streaming_text:
            pad_ids = torch.full((1, n_text), cfg.codec_pad_id, dtype=torch.long)
            icl = torch.cat([text + self.codec_embed(pad_ids), codec + tts_pad], dim=1)
            return icl, tts_pad
        if n_text > n_codec:
            return text[:, :n_codec] + codec, text[:, n_codec:]
        text = torch.cat([text] + [tts_pad] * (n_codec - n_text), dim=1)
        return text + codec, tts_pad
