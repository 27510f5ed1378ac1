// The model and data pickers of the New run and New study forms (templates/common/_pickers.html):
// the model spec and dataset they name, the upload and the server's answer to it, and what is
// missing before the server is asked. A refused upload shows the server's own message, and keeps
// it until another file is chosen.

import { api } from "./api.js";
import { $ } from "./dom.js";

const radio = (name) => ($(`input[name="${name}"]:checked`) || {}).value;

// The chosen file and the server's answer: {name, busy, result (POST /api/uploads), error}.
let upload = { name: null, busy: false, result: null, error: null };

/** The model spec: default, a folder's path or run:<id>. */
export function pickedModel() {
  const kind = radio("model_kind");
  if (kind === "folder") return $("#model-folder").value.trim();
  if (kind === "run") return $("#model-run").value;
  return "default";
}

/** The dataset: the built-in corpus, the uploaded file's stored path, or a path ("" for none). */
export function pickedDataset() {
  const kind = radio("dataset_kind");
  if (kind === "upload") return upload.result ? upload.result.dataset : "";
  if (kind === "path") return $("#dataset-path").value.trim();
  return "python-reference";
}

/** True while the chosen file is on its way: the form waits for the answer before checking. */
export function uploadPending() {
  return radio("dataset_kind") === "upload" && upload.busy;
}

/** What the pickers know is wrong before asking the server: [{loc, msg}] as the server's errors. */
export function pickerErrors() {
  const dataset = (msg) => [{ loc: ["dataset"], msg }];
  if (radio("dataset_kind") === "upload") {
    if (upload.error) return dataset(upload.error);
    if (!upload.result) return dataset("choose a file to upload first");
  }
  if (radio("model_kind") === "folder" && !pickedModel()) return [{ loc: ["model"], msg: "type the checkpoint folder's path" }];
  if (radio("dataset_kind") === "path" && !pickedDataset()) return dataset("type the file's path");
  return [];
}

// The server's words for a refused upload: its detail, or its field errors' messages.
function refusal(res) {
  const d = res.data || {};
  if (typeof d.detail === "string" && d.detail) return d.detail;
  const msgs = (d.errors || []).map((e) => e.msg).filter(Boolean);
  return msgs.length ? msgs.join("; ") : `the upload failed (HTTP ${res.status})`;
}

async function sendFile(file, changed) {
  const status = $("#upload-status");
  upload = { name: file ? file.name : null, busy: Boolean(file), result: null, error: null };
  if (!file) { status.textContent = ""; changed(); return; }
  $('input[name="dataset_kind"][value="upload"]').checked = true;
  status.textContent = `uploading ${file.name}…`;
  const mine = upload;
  const fd = new FormData();
  fd.append("file", file);
  const res = await api("POST", "/api/uploads", fd);
  if (upload !== mine) return; // another file was chosen meanwhile: its answer counts
  upload = { ...mine, busy: false, result: res.ok ? res.data : null, error: res.ok ? null : refusal(res) };
  status.textContent = res.ok ? `${res.data.name}: ${res.data.n_texts} texts, ${res.data.n_chars} characters` : "";
  changed();
}

/** Wire the pickers: typing in a choice's own input picks it; `changed()` after every upload. */
export function initPickers(changed) {
  const picks = [["#dataset-path", "dataset_kind", "path"], ["#model-folder", "model_kind", "folder"],
    ["#model-run", "model_kind", "run"]];
  for (const [input, name, value] of picks) {
    $(input).addEventListener("focus", () => { $(`input[name="${name}"][value="${value}"]`).checked = true; });
  }
  $("#dataset-file").addEventListener("change", (e) => sendFile(e.target.files[0], changed));
}
