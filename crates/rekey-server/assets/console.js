// Progressive enhancement only: every page works without this script.
// Copy buttons: <button data-copy="input-id" hidden> becomes visible and copies the input.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var input = document.getElementById(button.getAttribute("data-copy"));
  if (!input || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(input.value).then(function () {
      button.textContent = "Copied";
    }, function () {
      input.select();
    });
  });
});
