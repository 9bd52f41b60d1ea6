"""Tokenizer fixtures built offline (no hub, no downloads), for tests and examples.

:func:`cl100k_style_tokenizer` is a small byte-level BPE with the pre-tokenizer of OpenAI's
``cl100k_base`` (tiktoken). Unlike Gemma's SentencePiece model and GPT-2's byte-level BPE, that
pre-tokenizer keeps punctuation together with the newlines that follow it
(`` ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*``), so a demonstration input ending in ``.`` and the input
template's ``\\n`` become ONE token ``.\\n`` -- the multi-category case of paper-spec §2.2 rule 6.

The BPE is trained with ``tokenizers``' ``BpeTrainer`` on a fixed corpus (:func:`training_corpus`:
the paper's instructions and templates filled with a few sentences). The trainer breaks ties by
pair ids, so every build gives the same vocabulary and the same ids (the tests check it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["CL100K_PATTERN", "EOT", "cl100k_style_tokenizer", "training_corpus"]

#: cl100k_base's pre-tokenizer regex (tiktoken), as an Oniguruma pattern for ``tokenizers``.
CL100K_PATTERN = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"
    r"|\s*[\r\n]|\s+(?!\S)|\s+"
)
#: The only special token (bos/eos/unk); it is never added to an encoding unless ``bos=True``.
EOT = "<|endoftext|>"

_INSTRUCTIONS = (
    "Classify the news articles into the categories of World, Sports, Business, and Technology.",
    "Classify the reviews into the categories of Positive and Negative.",
    "Classify the entailment of the hypothesis and the premise into the categories of True and "
    "False.",
    "Classify the entailment of the hypothesis and the premise into the categories of true, "
    "neither and false.",
    "Classify the questions based on whether their answer type is a Number, Location, Person, "
    "Description, Entity, or Abbreviation.",
    "Classify the documents based on whether they are about a Company, School, Artist, Athlete, "
    "Politician, Transportation, Building, Nature, Village, Animal, Plant, Album, Film, or Book.",
)
_SENTENCES = (
    "The film is a great one.",
    "A dull and tired story.",
    "The plot of the movie is thin.",
    "It rains in the city today.",
    "The sky is dark and wet.",
    "Stocks rise into the close.",
    "The team wins the final game of the season.",
    "A new phone comes out next week.",
    "The company reports higher profits.",
    "The school opens a new building.",
    "Cats purr when they are happy.",
    "The river runs into the sea.",
    "An old village sits on the hill.",
    "The band plays a new album.",
    "The actor stars in the film.",
    "Oil prices fall again.",
    "The president meets the leaders of the world.",
    "The game ends in a draw.",
    "The review of the book is kind.",
    "A moving and funny film .",
    "The story is slow and long .",
    "It is the best movie of the year .",
    "The ending is sad. ",        # trailing spaces: " \n" becomes one token
    "We liked it a lot. ",
)
_QUESTIONS = (
    "What is a theory?",
    "Who wrote the book?",
    "Where is the capital of France?",
    "How many people live in the city?",
    "What does the word mean?",
    "Which team won the game?",
)
_LABELS = {
    "agnews": ("World", "Sports", "Business", "Technology"),
    "sst2": ("Positive", "Negative"),
    "rte": ("True", "False"),
    "cb": ("true", "neither", "false"),
    "trec": ("Number", "Location", "Person", "Description", "Entity", "Abbreviation"),
    "dbpedia": ("Company", "School", "Artist", "Athlete", "Politician", "Transportation",
                "Building", "Nature", "Village", "Animal", "Plant", "Album", "Film", "Book"),
}


def training_corpus() -> list[str]:
    """The fixed training texts: one few-shot prompt per task and rotation (a few hundred lines).

    >>> corpus = training_corpus()
    >>> corpus[0].startswith("Classify the news articles")
    True
    >>> len(corpus)
    36
    """
    tasks = (
        ("agnews", "Article: {}\n", "Answer: {}\n\n", _SENTENCES),
        ("sst2", "Review: {}\n", "Sentiment: {}\n\n", _SENTENCES),
        ("rte", "Hypothesis: {}\n Premise: {}\n", "Answer: {}\n\n", _SENTENCES),
        ("cb", "Hypothesis: {}\n Premise: {}\n", "Answer: {}\n\n", _SENTENCES),
        ("trec", "Question: {}\n", "Answer Type: {}\n\n", _QUESTIONS),
        ("dbpedia", "Article: {}\n", "Answer: {}\n\n", _SENTENCES),
    )
    out: list[str] = []
    for (task, t_in, t_out, inputs), instruction in zip(tasks, _INSTRUCTIONS):
        labels = _LABELS[task]
        for rot in range(6):
            parts = [instruction + "\n\n"]
            for j in range(4):
                a = inputs[(rot * 4 + j) % len(inputs)]
                b = inputs[(rot * 4 + j + 7) % len(inputs)]
                parts.append(t_in.format(a, b) + t_out.format(labels[(rot + j) % len(labels)]))
            test = t_in.format(inputs[rot % len(inputs)], inputs[-1 - rot])
            parts.append(test + t_out[: t_out.index(":") + 1])
            out.append("".join(parts))
    return out


@lru_cache(maxsize=None)
def _backend_json(vocab_size: int) -> str:
    """Train the BPE once per process (``tokenizers``' trainer is deterministic) and serialise."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CL100K_PATTERN), behavior="isolated"),
        # use_regex=False: only the byte-to-unicode mapping; cl100k's regex did the splitting.
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(training_corpus(), trainer)
    return backend.to_str()


def cl100k_style_tokenizer(*, bos: bool = False, vocab_size: int = 1000) -> Any:
    """A tiktoken-style (cl100k pre-tokenizer) byte-level BPE fast tokenizer, built offline.

    Args:
        bos: Prepend ``<|endoftext|>`` as a special BOS token (like ``gpt2_tokenizer(bos=True)``);
            by default no special token is added, as with cl100k itself.
        vocab_size: Upper bound for the trained vocabulary (the fixed corpus yields fewer).

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` whose offsets are character offsets into the
        original string (including a token's leading space). bos/eos/unk are ``<|endoftext|>``.

    >>> tok = cl100k_style_tokenizer()
    >>> tok.convert_ids_to_tokens(tok("a great film.\\nSentiment:")["input_ids"])
    ['a', 'Ġgreat', 'Ġfilm', '.Ċ', 'Sentiment', ':']
    """
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(_backend_json(vocab_size))
    if bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{EOT} $A", pair=f"{EOT} $A {EOT} $B:1",
            special_tokens=[(EOT, backend.token_to_id(EOT))],
        )
    else:
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=EOT, eos_token=EOT, unk_token=EOT,
    )
