// Atoll console page script (no build step, no dependencies): colour
// theme, keyboard shortcuts, dialogs, search as you type, and live
// updates. Live updates come over one Server-Sent Events stream per page:
// the server sends the HTML of each page region that changed, rendered by
// the same templates as the page, and this script swaps it in.

const root = document.documentElement;

// Theme: light, dark or the system's; remembered in a cookie the server
// reads, so the next page is drawn in the right colours from the start.
const themeSelect = document.getElementById('theme');
themeSelect?.addEventListener('change', () => {
  const v = themeSelect.value;
  root.dataset.theme = v;
  document.cookie = `atoll_theme=${v}; path=/; max-age=31536000; samesite=strict`;
});

// Dialogs open from any [data-open] button; drains need the typed name.
document.addEventListener('click', (e) => {
  const opener = e.target.closest('[data-open]');
  if (!opener) return;
  const dialog = document.getElementById(opener.dataset.open);
  if (dialog && !dialog.open) {
    dialog.showModal();
    dialog.querySelector('input:not([type=hidden])')?.focus();
  }
});
document.addEventListener('input', (e) => {
  const input = e.target.closest('[data-must-equal]');
  if (!input) return;
  const submit = input.form?.querySelector('[data-confirm-submit]');
  if (submit) submit.disabled = input.value !== input.dataset.mustEqual;
});

// A drill's plan is for the form as it was planned: once the form
// changes, its Run gives way to a note to plan again.
document.addEventListener('input', (e) => {
  if (!e.target.closest('[data-drill-form]')) return;
  const plan = document.querySelector('[data-plan]');
  if (plan) plan.dataset.stale = 'true';
});

// Keyboard: ? shortcuts, / search, g then a page's key.
let gPressed = 0;
let swallowSlash = false;
for (const type of ['keypress', 'beforeinput']) {
  document.addEventListener(type, (e) => {
    if (swallowSlash && (e.key === '/' || e.data === '/')) e.preventDefault();
    if (type === 'beforeinput') swallowSlash = false;
  }, true);
}
document.addEventListener('keyup', () => { swallowSlash = false; }, true);
document.addEventListener('keydown', (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName)) {
    if (e.key === 'Escape' && t.matches('[data-search]')) t.blur();
    return;
  }
  if (document.querySelector('dialog[open]')) return;
  if (e.key === '?') {
    e.preventDefault();
    document.getElementById('shortcuts')?.showModal();
    return;
  }
  if (e.key === '/') {
    const search = document.querySelector('[data-search]');
    if (search) {
      e.preventDefault();
      swallowSlash = true; // some input paths still deliver the character
      search.focus();
      search.select();
    }
    return;
  }
  if (e.key === 'g') {
    gPressed = Date.now();
    return;
  }
  if (gPressed && Date.now() - gPressed < 1500) {
    gPressed = 0;
    const link = document.querySelector(`nav a[data-shortcut="${CSS.escape(e.key)}"]`);
    if (link) {
      e.preventDefault();
      location.assign(link.href);
    }
  }
});

// Live updates.
const conn = document.getElementById('conn');
let source = null;

function setConn(state, text) {
  if (!conn) return;
  conn.dataset.state = state;
  conn.textContent = text;
}

// focusKey finds an element again after its region was redrawn.
function focusKey(el) {
  if (el.id) return `#${CSS.escape(el.id)}`;
  if (el.getAttribute('href')) return `a[href="${CSS.escape(el.getAttribute('href'))}"]`;
  const form = el.closest('form');
  if (form && el.dataset.action) return `form[action="${CSS.escape(form.getAttribute('action'))}"] [data-action="${CSS.escape(el.dataset.action)}"]`;
  return null;
}

function swap(region, html, hash) {
  const active = document.activeElement;
  const key = active && region.contains(active) ? focusKey(active) : null;
  region.innerHTML = html;
  region.dataset.live = hash;
  if (key) region.querySelector(key)?.focus({ preventScroll: true });
}

function connect() {
  source?.close();
  const base = document.body.dataset.liveUrl;
  if (!base) return;
  const have = [...document.querySelectorAll('[data-live]')].map((el) => `${el.id}:${el.dataset.live}`).join(',');
  source = new EventSource(`${base}&have=${encodeURIComponent(have)}`);
  source.addEventListener('open', () => setConn('live', 'Live'));
  source.addEventListener('error', () => setConn('down', 'Reconnecting…'));
  source.addEventListener('patch', (ev) => {
    const p = JSON.parse(ev.data);
    const region = document.getElementById(p.id);
    if (region) swap(region, p.html, p.hash);
  });
  source.addEventListener('signout', () => {
    source.close();
    location.assign(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
  });
  source.addEventListener('gone', (ev) => {
    source.close();
    setConn('down', 'Gone');
    const banner = document.createElement('p');
    banner.className = 'banner-gone';
    banner.setAttribute('role', 'alert');
    banner.textContent = `${JSON.parse(ev.data).message} This page no longer updates.`;
    document.getElementById('main')?.prepend(banner);
  });
}
connect();

// Search as you type: the list is fetched from the server (search, sort
// and paging are server-side), swapped in, and the address updated so a
// link or a reload shows the same list.
const searchForm = document.querySelector('[data-live-search]');
if (searchForm) {
  const input = searchForm.querySelector('[data-search]');
  let timer = 0;
  let inflight = null;
  const refresh = async () => {
    const params = new URLSearchParams(new FormData(searchForm));
    if (!params.get('q')) params.delete('q');
    const url = new URL(searchForm.action);
    url.search = params.toString();
    inflight?.abort();
    inflight = new AbortController();
    try {
      const res = await fetch(url, { signal: inflight.signal, headers: { Accept: 'text/html' } });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      const fresh = doc.getElementById('list');
      const list = document.getElementById('list');
      if (!fresh || !list) return;
      list.replaceWith(document.importNode(fresh, true));
      history.replaceState(null, '', url.pathname + url.search);
      if (doc.body.dataset.liveUrl) document.body.dataset.liveUrl = doc.body.dataset.liveUrl;
      connect();
    } catch (err) {
      if (err.name !== 'AbortError') setConn('down', 'Search failed');
    }
  };
  input?.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
  searchForm.addEventListener('submit', (e) => {
    e.preventDefault();
    clearTimeout(timer);
    refresh();
  });
}

// Logs panel (workload page): the last lines of every replica (or one),
// streamed from the console's logs route while Follow is on. Lines are
// appended as text, never as HTML; the panel keeps the newest 2,000 and
// sticks to the bottom unless the reader scrolled up.
const logsForm = document.querySelector('[data-logs-form]');
if (logsForm) {
  const pre = document.querySelector('[data-logs]');
  const status = document.querySelector('[data-logs-status]');
  let reading = null;
  const keep = 2000;
  const append = (text) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(document.createTextNode(text));
    const lines = pre.textContent.split('\n');
    if (lines.length > keep + 1) pre.textContent = lines.slice(-keep - 1).join('\n');
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  const read = async () => {
    reading?.abort();
    reading = new AbortController();
    const params = new URLSearchParams(new FormData(logsForm));
    for (const [k, v] of [...params]) if (!v) params.delete(k);
    const url = new URL(logsForm.action);
    url.search = params.toString();
    pre.textContent = '';
    pre.dataset.state = 'loading';
    status.textContent = 'Asking every member for the lines…';
    try {
      const res = await fetch(url, { signal: reading.signal, headers: { Accept: 'text/plain' } });
      if (!res.ok) {
        let detail = `${res.status} ${res.statusText}`;
        try { detail = (await res.json()).detail || detail; } catch { /* not a problem body */ }
        pre.dataset.state = 'error';
        status.textContent = `No logs: ${detail}`;
        return;
      }
      pre.dataset.state = params.get('follow') ? 'following' : 'done';
      status.textContent = params.get('follow') ? 'Following: new lines appear as they are written.' : 'The last lines, as of now.';
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        append(value);
      }
      if (pre.dataset.state === 'following') status.textContent = 'The stream ended (the hub closed it): Show reads again.';
      pre.dataset.state = 'done';
    } catch (err) {
      if (err.name !== 'AbortError') {
        pre.dataset.state = 'error';
        status.textContent = 'Reading the logs failed: Show tries again.';
      }
    }
  };
  logsForm.addEventListener('submit', (e) => { e.preventDefault(); read(); });
  read();
}
