// Notes: a serverless app that keeps its data in a record of its own
// (docs/APPS.md).
//
// On load it asks the gateway for its record with POST /_safe/v1/records
// {"name":"notes"}. That call is idempotent: the address comes from this
// site's key for the logged-in user and the name, so the first call makes
// the record and every later one just returns its address.
//
// Each note is one entry: the key is the title, the value the text.
// Saving is a PUT of the entry, deleting a DELETE. Everything from the
// network is put on the page with textContent, never innerHTML.

'use strict';

(function () {
  var API = '/_safe/v1/';
  var MAX_KEY = 256; // bytes
  var MAX_VALUE = 64 * 1024; // bytes

  var state = { record: null }; // bare address "m…"
  var encoder = new TextEncoder();

  function $(id) {
    return document.getElementById(id);
  }

  // ---- talking to the API ----

  function ApiError(status, message, consent) {
    this.status = status;
    this.message = message;
    this.consent = consent || null;
  }

  async function api(method, path, body, type) {
    var init = { method: method, cache: 'no-store', headers: {} };
    if (body !== undefined) {
      init.body = body;
      init.headers['Content-Type'] = type || 'application/json';
    }
    var res;
    try {
      res = await fetch(API + path, init);
    } catch (e) {
      throw new ApiError(0, 'cannot reach the gateway (' + e.message + ')');
    }
    var text = await res.text();
    var data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      var message =
        data && typeof data.error === 'string' ? data.error : 'HTTP ' + res.status;
      var consent = data && typeof data.consent === 'string' ? data.consent : null;
      throw new ApiError(res.status, message, consent);
    }
    return data;
  }

  function bareAddress(text) {
    if (typeof text !== 'string') return null;
    var t = text.trim().toLowerCase().replace(/^safe:\/\//, '');
    return /^m[a-z2-7]+$/.test(t) ? t : null;
  }

  // An entry key as one path segment. Text keys are UTF-8 percent-encoded;
  // keys that are not UTF-8 come as key_base64 and are encoded byte by byte.
  function keySegment(entry) {
    if (typeof entry.key === 'string') return encodeURIComponent(entry.key);
    if (typeof entry.key_base64 !== 'string') return null;
    var bytes = atob(entry.key_base64);
    var out = '';
    for (var i = 0; i < bytes.length; i++) {
      out += '%' + ('0' + bytes.charCodeAt(i).toString(16)).slice(-2);
    }
    return out;
  }

  // ---- the status line ----

  function setStatus(text, error, consent) {
    var el = $('status');
    el.textContent = text;
    el.className = error ? 'error' : '';
    if (consent && /^https?:\/\//i.test(consent)) {
      el.appendChild(document.createTextNode(' '));
      var a = document.createElement('a');
      a.href = consent;
      a.target = '_blank';
      a.rel = 'noopener';
      a.textContent = 'Allow it on the gateway\u2019s page, then try again.';
      el.appendChild(a);
    }
  }

  function showError(what, e) {
    if (e && e.status === 401) {
      setStatus('log in with `safe account login` to keep notes (' + e.message + ')', true);
    } else {
      var message = e && e.message ? e.message : String(e);
      setStatus(what + ': ' + message, true, e && e.consent);
    }
  }

  async function showQuota() {
    try {
      var me = await api('GET', 'whoami');
      var q = me && me.quota;
      if (q) {
        $('quota').textContent =
          'Today (UTC) this site has made ' + q.writes_today + ' of its ' +
          q.writes_per_day + ' writes and used ' + q.bytes_today + ' of its ' +
          q.bytes_per_day + ' bytes.';
      }
    } catch (e) {
      $('quota').textContent = '';
    }
  }

  // ---- showing notes ----

  function noteElement(entry) {
    var li = document.createElement('li');
    var title = document.createElement('h3');
    title.textContent =
      typeof entry.key === 'string' ? entry.key : '(a title that is not text)';
    li.appendChild(title);

    var text = document.createElement('p');
    var isText = typeof entry.value === 'string';
    if (isText) {
      text.textContent = entry.value;
    } else {
      var b64 = typeof entry.value_base64 === 'string' ? entry.value_base64 : '';
      text.textContent = '(not text: ' + Math.floor((b64.length * 3) / 4) + ' bytes)';
    }
    li.appendChild(text);

    if (isText && typeof entry.key === 'string') {
      var edit = document.createElement('button');
      edit.type = 'button';
      edit.textContent = 'Edit';
      edit.addEventListener('click', function () {
        $('title').value = entry.key;
        $('text').value = entry.value;
        $('text').focus();
      });
      li.appendChild(edit);
    }

    var segment = keySegment(entry);
    // "." and ".." cannot be sent as a path segment: browsers resolve them.
    if (segment && !/^(\.|%2e){1,2}$/i.test(segment)) {
      var del = document.createElement('button');
      del.type = 'button';
      del.textContent = 'Delete';
      del.addEventListener('click', function () {
        deleteNote(segment, del);
      });
      li.appendChild(del);
    }
    return li;
  }

  function render(record) {
    var entries = Array.isArray(record.entries) ? record.entries : [];
    var list = $('notes');
    while (list.firstChild) list.removeChild(list.firstChild);
    entries.forEach(function (entry) {
      if (entry && typeof entry === 'object') list.appendChild(noteElement(entry));
    });
    $('empty').hidden = list.childElementCount > 0;
  }

  // ---- actions ----

  async function onSave(event) {
    event.preventDefault();
    if (!state.record) return;
    var title = $('title').value.trim();
    var text = $('text').value;
    if (!title) {
      setStatus('Give the note a title.', true);
      return;
    }
    if (title === '.' || title === '..') {
      setStatus('A title cannot be "." or "..".', true);
      return;
    }
    if (encoder.encode(title).length > MAX_KEY) {
      setStatus('That title is too long (' + MAX_KEY + ' bytes at most).', true);
      return;
    }
    if (encoder.encode(text).length > MAX_VALUE) {
      setStatus('That text is too long (64 KiB at most).', true);
      return;
    }
    var button = $('save');
    button.disabled = true;
    setStatus('Saving…');
    try {
      var path = 'records/' + state.record + '/entries/' + encodeURIComponent(title);
      // The answer is the record as it now is.
      render(await api('PUT', path, text, 'text/plain; charset=utf-8'));
      setStatus('Saved \u201c' + title + '\u201d.');
      showQuota();
    } catch (e) {
      showError('Could not save', e);
    }
    button.disabled = false;
  }

  async function deleteNote(segment, button) {
    button.disabled = true;
    setStatus('Deleting…');
    try {
      render(await api('DELETE', 'records/' + state.record + '/entries/' + segment));
      setStatus('Deleted.');
      showQuota();
    } catch (e) {
      button.disabled = false;
      showError('Could not delete', e);
    }
  }

  function onClear() {
    $('title').value = '';
    $('text').value = '';
    $('title').focus();
  }

  // ---- start ----

  async function start() {
    $('form').addEventListener('submit', onSave);
    $('clear').addEventListener('click', onClear);
    $('save').disabled = true;
    setStatus('Loading…');
    try {
      // Idempotent: makes the record the first time, then finds it.
      var made = await api('POST', 'records', JSON.stringify({ name: 'notes' }));
      var address = bareAddress(made && made.address);
      if (!address) throw new ApiError(0, 'the gateway gave no record address');
      state.record = address;
      $('address').textContent = 'safe://' + address;
      render(await api('GET', 'records/' + address));
      $('save').disabled = false;
      setStatus('');
    } catch (e) {
      showError('Could not open your notes', e);
    }
    showQuota();
  }

  start();
})();
