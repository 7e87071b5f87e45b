// While a diagnosis's report is being made: wait for it (the API holds the answer until it
// is done), then reload the page to show the Grad-CAM, figures and downloads.
(function () {
  const script = document.currentScript;
  const id = script.dataset.diagnosis;
  function poll() {
    fetch(`/api/v1/diagnoses/${id}?wait_report=true`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((d) => (d.result.report === "pending" ? poll() : window.location.reload()))
      .catch(() => setTimeout(poll, 5000));
  }
  poll();
})();
