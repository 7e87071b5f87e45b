// Setting the thyroid bed: a click on a view fills the form with the clicked pixel (in the
// view's original pixels) and marks it; the physician then re-runs the diagnosis.
document.querySelectorAll("img.bed-picker").forEach((img) => {
  img.addEventListener("click", (event) => {
    const box = img.getBoundingClientRect();
    const col = Math.floor((event.clientX - box.left) * img.naturalWidth / box.width);
    const row = Math.floor((event.clientY - box.top) * img.naturalHeight / box.height);
    const form = img.closest("form");
    form.elements.row.value = row;
    form.elements.col.value = col;
    const mark = form.querySelector(".bed-mark");
    mark.style.left = `${event.clientX - box.left}px`;
    mark.style.top = `${event.clientY - box.top}px`;
    mark.hidden = false;
  });
});
