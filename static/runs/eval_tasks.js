// The benchmark tasks a New run or New study form asks for (templates/runs/_eval_tasks.html):
// the ticked tasks, then any other names typed, as the config's eval_tasks.

import { $, $$ } from "../common/dom.js";

export function evalTasks(root = document) {
  const ticked = $$(".eval-task:checked", root).map((el) => el.value);
  const other = $(".eval-other", root);
  const typed = other ? other.value.split(",").map((t) => t.trim()).filter(Boolean) : [];
  return [...ticked, ...typed];
}
