// Live pages: the server says something of ours changed (an event with no
// data, on /console/live); the page fetches itself again and swaps in its
// fresh live regions (elements with data-region and an id). Everything
// else on the page, forms included, is left as it is.
(() => {
  const source = document.body.dataset.live;
  if (!source || !window.EventSource) return;
  let busy = false;
  let again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected) { location.assign(response.url); return; }
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of document.querySelectorAll("[data-region][id]")) {
        const next = fresh.getElementById(region.id);
        if (next && next.innerHTML !== region.innerHTML) region.innerHTML = next.innerHTML;
      }
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }
  const events = new EventSource(source);
  events.addEventListener("change", refresh);
  events.addEventListener("open", () => { document.body.dataset.following = "yes"; });
})();
