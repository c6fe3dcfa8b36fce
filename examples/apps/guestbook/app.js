// A guestbook: a serverless app on the safe gateway's apps API
// (docs/APPS.md).
//
// The book is a record with public appends. Each post is one append whose
// value is the JSON text {"name": "...", "text": "..."}. Anyone logged in
// at the gateway can post; the record's owner can remove posts.
//
// Which book: ?book=safe://m… in the page's URL, else "book" in the
// site's config.json, else a button that creates one.
//
// Posts are shown newest first. Everything that comes from the network is
// put on the page with textContent, never innerHTML.

'use strict';

(function () {
  var API = '/_safe/v1/';
  // The largest value a record takes (an append or an entry).
  var MAX_VALUE = 64 * 1024;
  var NAME_KEY = 'guestbook-name';

  var state = {
    book: null, // bare address, "m…"
    me: null, // whoami's answer, when someone is logged in
    meError: null, // why whoami failed
    owner: false, // whether my site key owns the book
    actions: 0, // posts, removals and creates started (for the status line)
    asked: 0, // record reads and writes started
    shown: 0, // the newest of them whose answer is on the page
  };

  function $(id) {
    return document.getElementById(id);
  }

  // ---- talking to the API ----

  function ApiError(status, message, consent) {
    this.status = status;
    this.message = message;
    this.consent = consent || null;
  }

  // Calls the API; resolves to the parsed JSON, or rejects with ApiError.
  async function api(method, path, body) {
    var init = { method: method, cache: 'no-store', headers: {} };
    if (body !== undefined) {
      init.body = body;
      init.headers['Content-Type'] = 'application/json';
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

  // A record address's bare form ("m…"), or null if `text` is not one.
  function bareAddress(text) {
    if (typeof text !== 'string') return null;
    var t = text.trim().toLowerCase().replace(/^safe:\/\//, '');
    return /^m[a-z2-7]+$/.test(t) ? t : null;
  }

  // ---- the status line ----

  function setStatus(text, error, consent) {
    var el = $('status');
    el.textContent = text;
    el.className = error ? 'error' : '';
    // The consent page is on the gateway's own origin. Only a plain
    // http(s) link is ever made.
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

  function loginHint(e) {
    setStatus('log in with `safe account login` to post (' + e.message + ')', true);
  }

  function showError(what, e) {
    if (e && e.status === 401) {
      loginHint(e);
    } else {
      var message = e && e.message ? e.message : String(e);
      setStatus(what + ': ' + message, true, e && e.consent);
    }
  }

  // What the status line says when nothing is going on.
  function idle() {
    if (state.meError && state.meError.status === 401) {
      loginHint(state.meError);
    } else if (state.meError) {
      setStatus('Cannot tell who you are: ' + state.meError.message, true);
    } else {
      setStatus('');
    }
  }

  // ---- which book ----

  async function findBook() {
    var fromUrl = new URLSearchParams(location.search).get('book');
    if (fromUrl !== null) {
      var given = bareAddress(fromUrl);
      if (!given) throw new Error('?book= is not a record address (safe://m…)');
      return given;
    }
    // Relative, so the app also works from a folder of a bigger site.
    var res;
    try {
      res = await fetch('config.json', { cache: 'no-cache' });
    } catch (e) {
      throw new Error('cannot reach the gateway (' + e.message + ')');
    }
    if (res.status === 404) return null;
    if (!res.ok) throw new Error('config.json: HTTP ' + res.status);
    var config;
    try {
      config = await res.json();
    } catch (e) {
      throw new Error('config.json is not JSON');
    }
    var book = config && bareAddress(config.book);
    if (!book) throw new Error('config.json has no "book": "safe://m…"');
    return book;
  }

  // ---- showing posts ----

  // A post's name and text, whatever the append holds.
  function parsePost(append) {
    if (typeof append.value !== 'string') {
      var b64 = typeof append.value_base64 === 'string' ? append.value_base64 : '';
      return {
        name: '',
        text: '(not text: ' + Math.floor((b64.length * 3) / 4) + ' bytes)',
      };
    }
    try {
      var v = JSON.parse(append.value);
      if (v && typeof v === 'object' && typeof v.text === 'string') {
        return { name: typeof v.name === 'string' ? v.name : '', text: v.text };
      }
    } catch (e) {
      // Not JSON: shown as it is.
    }
    return { name: '', text: append.value };
  }

  function postElement(append) {
    var post = parsePost(append);
    var li = document.createElement('li');

    if (state.owner && typeof append.id === 'string') {
      var remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'remove';
      remove.textContent = 'Remove';
      remove.addEventListener('click', function () {
        removePost(append.id, remove);
      });
      li.appendChild(remove);
    }

    var who = document.createElement('span');
    who.className = 'who';
    var name = post.name.trim();
    who.textContent = name ? name.slice(0, 100) : 'anonymous';
    li.appendChild(who);

    var when = document.createElement('time');
    when.className = 'when';
    if (typeof append.time_unix_ms === 'number') {
      var date = new Date(append.time_unix_ms);
      when.dateTime = date.toISOString();
      when.textContent = date.toLocaleString();
      when.title = "by the poster's own clock";
    } else {
      when.textContent = 'time unknown';
    }
    li.appendChild(when);

    var text = document.createElement('p');
    text.className = 'text';
    text.textContent = post.text;
    li.appendChild(text);
    return li;
  }

  function render(record) {
    var owners = Array.isArray(record.owners) ? record.owners : [];
    state.owner = !!(state.me && owners.indexOf(state.me.public_key) >= 0);
    $('owner-note').hidden = !state.owner;

    // The API lists appends oldest first; this page shows newest first.
    var appends = Array.isArray(record.appends) ? record.appends.slice().reverse() : [];
    var list = $('posts');
    while (list.firstChild) list.removeChild(list.firstChild);
    appends.forEach(function (append) {
      if (append && typeof append === 'object') list.appendChild(postElement(append));
    });
    $('empty').hidden = list.childElementCount > 0;
  }

  // Shows `record` unless a newer answer is already on the page (answers
  // can come back out of order).
  function show(ticket, record) {
    if (ticket < state.shown) return;
    state.shown = ticket;
    render(record);
  }

  // Reads the book again and shows it; rejects with ApiError.
  async function refresh() {
    var ticket = ++state.asked;
    show(ticket, await api('GET', 'records/' + state.book));
  }

  // ---- actions ----

  async function onCreate() {
    state.actions++;
    var button = $('create');
    button.disabled = true;
    setStatus('Creating a guestbook…');
    try {
      var made = await api(
        'POST',
        'records',
        JSON.stringify({ name: 'guestbook', public_append: true })
      );
      var address = bareAddress(made && made.address);
      if (!address) throw new ApiError(0, 'the gateway gave no record address');
      location.search = '?book=' + encodeURIComponent('safe://' + address);
    } catch (e) {
      button.disabled = false;
      showError('Could not create a guestbook', e);
    }
  }

  async function onPost(event) {
    event.preventDefault();
    var name = $('name').value.trim();
    var text = $('message').value;
    if (!text.trim()) {
      setStatus('Write a message first.', true);
      return;
    }
    var body = JSON.stringify({ name: name, text: text });
    if (new TextEncoder().encode(body).length > MAX_VALUE) {
      setStatus('That message is too long (64 KiB at most).', true);
      return;
    }
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch (e) {
      // Storage may be off: the name is only a convenience.
    }
    state.actions++;
    var button = $('post');
    button.disabled = true;
    setStatus('Posting…');
    try {
      await api('POST', 'records/' + state.book + '/appends', body);
    } catch (e) {
      button.disabled = false;
      showError('Could not post', e);
      return;
    }
    $('message').value = '';
    try {
      await refresh();
      setStatus('Message posted.');
    } catch (e) {
      setStatus('Message posted, but the list could not be read again: ' + e.message, true);
    }
    button.disabled = false;
  }

  async function removePost(id, button) {
    if (!/^[0-9a-f]{64}$/.test(id)) return;
    state.actions++;
    button.disabled = true;
    setStatus('Removing the post…');
    try {
      // The answer is the record as it now is.
      var ticket = ++state.asked;
      show(ticket, await api('DELETE', 'records/' + state.book + '/appends/' + id));
      setStatus('Post removed.');
    } catch (e) {
      button.disabled = false;
      showError('Could not remove the post', e);
    }
  }

  // ---- start ----

  async function start() {
    $('create').addEventListener('click', onCreate);
    $('form').addEventListener('submit', onPost);
    try {
      $('name').value = localStorage.getItem(NAME_KEY) || '';
    } catch (e) {
      // No storage: no remembered name.
    }
    setStatus('Loading…');

    var who = api('GET', 'whoami').then(
      function (me) {
        state.me = me;
      },
      function (e) {
        state.meError = e;
      }
    );
    var book;
    try {
      book = await findBook();
    } catch (e) {
      setStatus(e.message, true);
      return;
    }
    await who;
    if (state.meError && state.meError.status === 401) {
      $('post').disabled = true;
    }

    if (!book) {
      $('nobook').hidden = false;
      idle();
      return;
    }
    state.book = book;
    $('address').textContent = 'safe://' + book;
    $('book').hidden = false;
    var actions = state.actions;
    try {
      await refresh();
      // Unless the user already posted (and the status says how it went).
      if (state.actions === actions) idle();
    } catch (e) {
      if (state.actions !== actions) return;
      if (e.status === 404) {
        setStatus('There is no record at safe://' + book + '.', true);
      } else {
        showError('Could not read the guestbook', e);
      }
    }
  }

  start();
})();
