// The "Print" button on slip pages (no inline handlers: the Content-Security-Policy allows only our files).
document.querySelectorAll("[data-print]").forEach((button) => button.addEventListener("click", () => window.print()));
