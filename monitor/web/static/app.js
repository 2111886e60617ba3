// Progressive enhancement only: every page works without this file.
// Show each <time datetime="..."> in the viewer's time zone (the text says UTC otherwise).
document.addEventListener("DOMContentLoaded", function () {
  var format = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short"});
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) {
      el.title = el.textContent;
      el.textContent = format.format(when);
      el.classList.add("local");
    }
  });
});
