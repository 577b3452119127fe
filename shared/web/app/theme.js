// Runs before first paint (a classic script, not a module): applies the stored theme override so a dark-mode
// user never sees a light flash. `nt.theme` = 'light' | 'dark'; absent = follow the system.
(function () {
  try {
    var t = localStorage.getItem('nt.theme');
    if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  } catch (e) { /* ignore */ }
})();
