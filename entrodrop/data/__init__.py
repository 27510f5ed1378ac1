"""Training data: built-in corpora, users' files in every supported format, chat rendering, tokens.

The modules, in the order data flows through them:

- ``errors``: DataError, DataTooLarge and the decoded-text budget;
- ``readers``, ``parquet``: a file type's bytes to records (line, item or row);
- ``formats``: detection from keys, every instruction format to ONE internal form (messages);
- ``files``: a file to its examples (``parse_data_file``, ``read_data_file``);
- ``builtin``, ``python_qa``, ``datasets``: built-in corpora and the train / held-out split;
- ``chat``: a conversation through the model's chat template, with its trained tokens;
- ``examples``: examples cut to seq_len and counted (the ``data`` report);
- ``blocks``, ``rows``: plain text as fixed blocks, and token rows as tensors.

Every public name is importable from ``entrodrop.data``.
"""

from __future__ import annotations

from entrodrop.data.blocks import build_blocks, fingerprint_blocks, tokenize_texts
from entrodrop.data.builtin import GENERAL_TEXT, PYTHON_REFERENCE, python_reference_topics
from entrodrop.data.chat import ChatTemplateMissing, Rendered, chat_template, render_conversation
from entrodrop.data.datasets import (
    BUILTIN_DATASETS,
    HELDOUT_EVERY,
    ChatData,
    Dataset,
    DatasetTexts,
    all_examples,
    all_texts,
    general_texts,
    is_builtin,
    load_dataset,
    python_reference,
    split_conversations,
    split_dataset,
    split_user_texts,
)
from entrodrop.data.errors import (
    TEXT_BUDGET_ENV,
    TEXT_BUDGET_PER_UPLOAD_BYTE,
    DataError,
    DataTooLarge,
    env_text_budget,
)
from entrodrop.data.examples import (
    TokenizedExamples,
    check_trainable,
    data_report,
    example_tokens,
    tokenize_conversations,
)
from entrodrop.data.files import (
    USER_SUFFIXES,
    UserData,
    describe_upload,
    parse_data_file,
    parse_text_file,
    read_data_file,
    read_user_file,
)
from entrodrop.data.formats import (
    FORMAT_HELP,
    FORMATS,
    INSTRUCTION_FORMATS,
    Conversation,
    Example,
    Message,
    is_instruction,
)
from entrodrop.data.parquet import PARQUET_BATCH_ROWS
from entrodrop.data.paths import check_name_lengths, check_path_allowed, uploads_dir
from entrodrop.data.python_qa import PYTHON_QA, python_qa_examples
from entrodrop.data.readers import read_text
from entrodrop.data.rows import TokenRows

__all__ = [
    "read_text",
    "BUILTIN_DATASETS",
    "FORMATS",
    "FORMAT_HELP",
    "GENERAL_TEXT",
    "HELDOUT_EVERY",
    "INSTRUCTION_FORMATS",
    "PARQUET_BATCH_ROWS",
    "PYTHON_QA",
    "PYTHON_REFERENCE",
    "TEXT_BUDGET_ENV",
    "TEXT_BUDGET_PER_UPLOAD_BYTE",
    "USER_SUFFIXES",
    "ChatData",
    "ChatTemplateMissing",
    "Conversation",
    "DataError",
    "DataTooLarge",
    "Dataset",
    "DatasetTexts",
    "Example",
    "Message",
    "Rendered",
    "TokenRows",
    "TokenizedExamples",
    "UserData",
    "all_examples",
    "all_texts",
    "build_blocks",
    "chat_template",
    "check_name_lengths",
    "check_path_allowed",
    "check_trainable",
    "data_report",
    "describe_upload",
    "env_text_budget",
    "example_tokens",
    "fingerprint_blocks",
    "general_texts",
    "is_builtin",
    "is_instruction",
    "load_dataset",
    "parse_data_file",
    "parse_text_file",
    "python_qa_examples",
    "python_reference",
    "python_reference_topics",
    "read_data_file",
    "read_user_file",
    "render_conversation",
    "split_conversations",
    "split_dataset",
    "split_user_texts",
    "tokenize_conversations",
    "tokenize_texts",
    "uploads_dir",
]
