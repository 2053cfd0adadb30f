// Polls the order's status until it is final; the page itself never trusts ?status=.
(function () {
  var box = document.getElementById("order-status");
  if (!box || box.dataset.final === "true") return;
  var delay = 2000;
  function poll() {
    fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data) {
          document.getElementById("state").textContent = data.label;
          box.dataset.state = data.state;
          document.getElementById("status").textContent = data.status;
          box.className = "order-status state-" + data.state;
          if (data.unreachable !== null) {
            document.getElementById("unreachable").hidden = !data.unreachable;
          }
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
