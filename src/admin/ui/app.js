// The Tokens page: talks to /v1 with the credential kept in sessionStorage (this tab only).
'use strict';

const STORAGE_KEY = 'tokengate.credential';
const $ = (id) => document.getElementById(id);
let session = null;
let cursor = null;
let filterTimer = null;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + sessionStorage.getItem(STORAGE_KEY) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const e = data && data.error;
    const message = e ? (e.field ? e.field + ': ' : '') + e.message : 'HTTP ' + response.status;
    if (response.status === 401) signOut('Your credential is no longer valid. Sign in again.');
    throw new ApiError(response.status, message);
  }
  return data;
}

function relative(iso) {
  if (!iso) return 'never';
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  const units = [[86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [size, unit] of units) {
    if (seconds >= size) {
      const n = Math.floor(seconds / size);
      return n + ' ' + unit + (n === 1 ? '' : 's') + ' ago';
    }
  }
  return 'just now';
}

const day = (iso) => (iso ? iso.slice(0, 10) : '-');

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(label, className, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

function actionsFor(token) {
  const act = (action) => async () => {
    try {
      await api('POST', '/v1/tokens/' + token.id + '/' + action);
      await loadTokens(true);
    } catch (e) {
      $('list-error').textContent = e.message;
    }
  };
  const list = [];
  if (token.status === 'active') list.push(button('Suspend', 'secondary', act('suspend')));
  if (token.status === 'suspended') list.push(button('Activate', 'secondary', act('activate')));
  if (token.status !== 'revoked') {
    list.push(button('Revoke', 'danger', () => confirmByName(token, 'Revoke', 'Anything using this token stops working at once.', act('revoke'))));
  }
  if (token.status === 'revoked') {
    if (session.allow_restore) list.push(button('Restore', 'secondary', act('restore')));
    list.push(button('Delete', 'danger', () => confirmByName(token, 'Delete', 'The token is removed for good.', async () => {
      try {
        await api('DELETE', '/v1/tokens/' + token.id);
        await loadTokens(true);
      } catch (e) {
        $('list-error').textContent = e.message;
      }
    })));
  }
  return list;
}

function render(tokens, append) {
  const body = document.querySelector('#tokens tbody');
  if (!append) body.replaceChildren();
  for (const t of tokens) {
    const tr = document.createElement('tr');
    tr.dataset.id = t.id;
    tr.append(cell(t.name, 'name'), cell(t.display, 'token'));
    const status = document.createElement('td');
    const badge = document.createElement('span');
    badge.className = 'badge status-' + t.status;
    badge.textContent = t.status;
    status.append(badge);
    tr.append(status, cell(day(t.created_at)), cell(day(t.expires_at)), cell(relative(t.last_used_at), 'last-used'), cell(t.created_by));
    const actions = document.createElement('td');
    actions.className = 'actions';
    actions.append(...actionsFor(t));
    tr.append(actions);
    body.append(tr);
  }
  $('empty').hidden = body.children.length > 0;
}

async function loadTokens(reset) {
  if (reset) cursor = null;
  const params = new URLSearchParams({ limit: '50' });
  const name = $('filter').value.trim();
  if (name) params.set('name', name);
  if (cursor) params.set('cursor', cursor);
  try {
    const page = await api('GET', '/v1/tokens?' + params);
    $('list-error').textContent = '';
    render(page.tokens, !reset);
    cursor = page.next_cursor;
    $('more').hidden = !cursor;
  } catch (e) {
    $('list-error').textContent = e.message;
  }
}

function confirmByName(token, verb, consequence, onConfirm) {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = verb + ' "' + token.name + '"?';
  $('confirm-text').textContent = consequence;
  $('confirm-name').textContent = token.name;
  $('confirm-input').value = '';
  $('confirm-ok').disabled = true;
  $('confirm-ok').textContent = verb;
  dialog.onclose = () => {
    if (dialog.returnValue === 'ok' && $('confirm-input').value === token.name) onConfirm();
  };
  dialog.showModal();
  $('confirm-input').focus();
}

async function start() {
  try {
    session = await api('GET', '/v1/session');
  } catch (e) {
    if (e.status !== 401) signOut(e.message);
    return;
  }
  const caller = session.caller;
  $('who').textContent = caller.kind === 'operator' ? 'Signed in with an admin key' : 'Signed in as ' + caller.display_name + ' (' + caller.id + ')';
  $('owner-field').hidden = caller.kind !== 'operator';
  $('create-owner').required = caller.kind === 'operator';
  const select = $('create-expiry');
  select.replaceChildren(...session.expiry_days.map((d) => new Option(d + ' days', String(d))));
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  await loadTokens(true);
}

function signOut(message) {
  sessionStorage.removeItem(STORAGE_KEY);
  session = null;
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
}

document.addEventListener('DOMContentLoaded', () => {
  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    sessionStorage.setItem(STORAGE_KEY, $('credential').value.trim());
    $('credential').value = '';
    $('sign-in-error').textContent = '';
    await start();
  });
  $('sign-out').addEventListener('click', () => signOut());

  $('create-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: $('create-name').value, expires_in_days: Number($('create-expiry').value) };
    if (session.caller.kind === 'operator') body.owner = $('create-owner').value.trim();
    try {
      const created = await api('POST', '/v1/tokens', body);
      $('create-error').textContent = '';
      $('create-name').value = '';
      $('new-token').textContent = created.token;
      $('new-header').textContent = 'Authorization: ' + created.authorization_header;
      $('copy-status').textContent = '';
      $('created-dialog').showModal();
      await loadTokens(true);
    } catch (e) {
      $('create-error').textContent = e.message;
    }
  });

  $('copy').addEventListener('click', async () => {
    const text = $('new-token').textContent;
    try {
      await navigator.clipboard.writeText(text);
      $('copy-status').textContent = 'Copied to the clipboard.';
    } catch {
      const range = document.createRange();
      range.selectNodeContents($('new-token'));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      $('copy-status').textContent = 'Selected: press Ctrl+C (or Cmd+C) to copy.';
    }
  });
  // The secret leaves the page for good: at once on "Done" (the dialog's close event comes a
  // task later), and on any other way of closing it (Escape).
  const forgetSecret = () => {
    $('new-token').textContent = '';
    $('new-header').textContent = '';
  };
  $('created-dialog').addEventListener('close', forgetSecret);
  $('close-created').addEventListener('click', () => {
    forgetSecret();
    $('created-dialog').close();
  });

  $('confirm-input').addEventListener('input', () => {
    $('confirm-ok').disabled = $('confirm-input').value !== $('confirm-name').textContent;
  });
  $('filter').addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => loadTokens(true), 200);
  });
  $('more').addEventListener('click', () => loadTokens(false));

  if (sessionStorage.getItem(STORAGE_KEY)) start();
  else signOut();
});
