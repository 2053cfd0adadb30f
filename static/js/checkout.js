// One click, one order: the server also refuses a second order for the same form.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("requisites-form");
  if (!form) return;
  form.addEventListener("submit", function () {
    var button = document.getElementById("place-order");
    window.setTimeout(function () { button.disabled = true; button.textContent = button.dataset.busy; }, 0);
  });
});
