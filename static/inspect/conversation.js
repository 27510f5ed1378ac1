/* Conversation mode: what to score is a conversation (pasted as chat `messages` JSON or as one
   block per turn) or an example of an uploaded instruction file, paged by index. The server
   renders it with the model's chat template and says which tokens are trained. */
import { detailOf, fetchJSON } from "./requests.js";
import { $, DATA } from "./state.js";

// An uploaded file being paged: {dataset, name, format, n, index}; null: the pasted messages.
export const conv = { file: null };

const TURN = /^(system|user|assistant)\s*:\s?(.*)$/i;

// "user: ...\n\nassistant: ..." blocks; lines without a role prefix continue the turn above.
function parseBlocks(text) {
  const messages = [];
  for (const line of text.split("\n")) {
    const m = TURN.exec(line);
    if (m) messages.push({ role: m[1].toLowerCase(), content: m[2] });
    else if (messages.length) messages[messages.length - 1].content += `\n${line}`;
    else if (line.trim()) return { problem: "Start each turn with user:, assistant: or system:." };
  }
  for (const m of messages) m.content = m.content.trim();
  return { messages };
}

/** The pasted text as messages: chat JSON ([...] or {"messages": [...]}) or role blocks. */
export function parseConversation(text) {
  const trimmed = text.trim();
  if (!trimmed) return { problem: "Paste a conversation or upload an instruction file first." };
  if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
    let value;
    try {
      value = JSON.parse(trimmed);
    } catch (err) {
      return { problem: `The messages are not valid JSON: ${err.message}` };
    }
    const messages = Array.isArray(value) ? value : value.messages;
    if (!Array.isArray(messages)) return { problem: 'JSON messages are a list, or {"messages": [...]}.' };
    return { messages };
  }
  return parseBlocks(trimmed);
}

/** The request's source: {example} while a file is paged, else {messages}; or {problem}. */
export function conversationSource() {
  if (conv.file) return { example: { dataset: conv.file.dataset, index: conv.file.index } };
  return parseConversation($("conv-text").value);
}

function blocks(messages) {
  return messages.map((m) => `${m.role}: ${m.content}`).join("\n\n");
}

/** After a score: the example shown in the box, and where the pager stands. */
export function showConversation(conversation) {
  if (!conversation || !conv.file) return;
  conv.file.n = conversation.n_examples;
  conv.file.format = conversation.format;
  $("conv-text").value = blocks(conversation.messages);
  syncPager();
}

function syncPager() {
  const f = conv.file;
  $("conv-pager").hidden = !f;
  $("conv-text").readOnly = Boolean(f);
  if (!f) return;
  $("conv-where").textContent = `${f.index + 1} / ${f.n}`;
  $("conv-prev").disabled = f.index === 0;
  $("conv-next").disabled = f.index + 1 >= f.n;
  $("conv-info").textContent = `${f.name}: ${f.format}, ${f.n.toLocaleString()} examples; example ${f.index + 1} shown.`;
}

async function upload(file, scoreNow) {
  const limit = DATA.limits.max_upload_bytes;
  if (file.size > limit) {
    $("conv-info").textContent = `${file.name} is ${file.size} bytes; the limit is ${limit} bytes.`;
    return;
  }
  const fd = new FormData();
  fd.append("file", file);
  $("conv-info").textContent = `Reading ${file.name}…`;
  const res = await fetchJSON("/api/uploads", { method: "POST", body: fd }).catch(() => null);
  if (!res || !res.ok) {
    $("conv-info").textContent = res ? `${detailOf(res)}; nothing was loaded.` : "The server did not answer.";
    return;
  }
  const b = res.body;
  conv.file = { dataset: b.dataset, name: b.name, format: b.format, n: b.n_examples, index: 0 };
  syncPager();
  scoreNow();
}

/** Wire the upload, the pager and "Use pasted"; `scoreNow` scores the current source. */
export function initConversation(scoreNow) {
  $("conv-file").addEventListener("change", () => {
    const file = $("conv-file").files[0];
    if (file) upload(file, scoreNow);
    $("conv-file").value = ""; // the same file again is a new upload
  });
  const step = (d) => {
    conv.file.index = Math.min(conv.file.n - 1, Math.max(0, conv.file.index + d));
    syncPager();
    scoreNow();
  };
  $("conv-prev").addEventListener("click", () => step(-1));
  $("conv-next").addEventListener("click", () => step(1));
  $("conv-clear").addEventListener("click", () => {
    conv.file = null;
    syncPager();
    $("conv-info").textContent = "Edit the messages, then Score.";
  });
  $("conv-text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) scoreNow();
  });
}
