// Polls the order's status until it is final and redraws the timeline; the page never trusts ?status=.
(function () {
  var box = document.getElementById("order-status");
  if (!box || box.dataset.final === "true") return;
  var delay = 2000;

  function drawSteps(steps) {
    var list = document.getElementById("timeline");
    list.textContent = "";
    steps.forEach(function (step) {
      var item = document.createElement("li");
      item.className = "step" + (step.done ? " done" : "") + (step.current ? " current" : "");
      item.dataset.step = step.key;
      if (step.current) item.setAttribute("aria-current", "step");
      var label = document.createElement("span");
      label.className = "label";
      label.textContent = step.label;
      item.appendChild(label);
      if (step.time) {
        var time = document.createElement("span");
        time.className = "time";
        time.textContent = step.time;
        item.appendChild(document.createTextNode(" "));
        item.appendChild(time);
      }
      list.appendChild(item);
    });
  }

  function show(data) {
    document.getElementById("state").textContent = data.label;
    box.dataset.state = data.state;
    box.className = "order-status state-" + data.state;
    var status = document.getElementById("status");
    status.textContent = data.status_word;
    status.dataset.status = data.status;
    document.getElementById("next-step").textContent = data.next_step;
    drawSteps(data.steps);
    var next = document.getElementById("continue");
    if (next) {
      next.hidden = !data.can_pay;
      var left = document.getElementById("time-left");
      if (left) {
        left.hidden = data.time_left === null;
        if (data.time_left !== null) left.textContent = data.time_left;
      }
      var confirm = document.getElementById("confirm-step");
      if (confirm) confirm.hidden = data.status !== "new";
    }
    if (data.unreachable !== null) {
      document.getElementById("unreachable").hidden = !data.unreachable;
    }
  }

  function poll() {
    fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data) {
          show(data);
          if (data.final) {
            box.dataset.final = "true";
            document.getElementById("polling").hidden = true;
            return;
          }
        }
        delay = Math.min(delay * 1.5, 15000);
        window.setTimeout(poll, delay);
      })
      .catch(function () { window.setTimeout(poll, 15000); });
  }
  window.setTimeout(poll, delay);
})();
