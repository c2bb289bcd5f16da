(function () {
  var me = document.currentScript;
  var box = document.getElementById('auto');
  var on = me.dataset.always === '1' || localStorage.getItem('cb-auto') === '1';
  if (box) {
    box.checked = on;
    box.addEventListener('change', function () {
      localStorage.setItem('cb-auto', box.checked ? '1' : '0');
      if (box.checked) location.reload();
    });
  }
  if (on) setTimeout(function () { location.replace('/admin/'); }, 5000);
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) {
      if (!confirm(f.getAttribute('data-confirm'))) e.preventDefault();
    });
  });
})();
