// The state of the student's own server on the portal's home page (issue 23): asked from the portal's
// /api/server/ (which asks the hub), without a page reload. Every 2 s while it starts; every 10 s while it is
// not running (a start asked for at login may still come); it stops asking once the server is ready, after
// 5 minutes, or on an answer it does not expect (logged out, too many requests).
(function () {
  const box = document.getElementById("server-state");
  if (!box || !window.fetch) return;
  const FAST = 2000, SLOW = 10000, GIVE_UP = 5 * 60 * 1000;
  const started = Date.now();

  function show(answer) {
    box.textContent = answer.label;
    box.dataset.state = answer.state;
    box.hidden = false;
  }

  function ask() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((answer) => {
        show(answer);
        if (answer.state === "ready" || Date.now() - started > GIVE_UP) return;
        setTimeout(ask, answer.state === "starting" || answer.state === "stopping" ? FAST : SLOW);
      })
      .catch(() => {});
  }

  ask();
})();
