// The config inputs of the New run and New study forms (templates/common/_form.html) read into a
// config body.

// A form input's value in a config body: null for an empty nullable field, undefined for an
// empty one that is not (left out: the server's default).
export function fieldValue(el) {
  const kind = el.dataset.kind;
  if (kind === "bool") return el.checked;
  if (kind === "select") return el.value;
  const empty = el.value.trim() === "";
  if (kind === "text") return empty && el.dataset.nullable ? null : el.value;
  if (el.validity && el.validity.badInput) return "not a number"; // the server names the field
  if (empty) return el.dataset.nullable ? null : undefined;
  return Number(el.value);
}

// Set obj["a"]["b"] for the form name "a.b", creating the objects on the way.
export function setPath(obj, path, value) {
  const keys = path.split(".");
  let node = obj;
  keys.slice(0, -1).forEach((k) => { node = node[k] = node[k] || {}; });
  node[keys[keys.length - 1]] = value;
}
