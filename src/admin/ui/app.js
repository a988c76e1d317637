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

// `100/60s burst 20, quota 100000, from 10.0.0.0/8`, or `none`: as the CLI shows limits.
function limitsText(limits) {
  const parts = [];
  const { rate, quota, networks } = limits || {};
  if (rate) parts.push(rate.requests + '/' + rate.window_secs + 's' + (rate.burst !== undefined ? ' burst ' + rate.burst : ''));
  if (quota !== undefined) parts.push('quota ' + quota);
  if (networks && networks.length) parts.push('from ' + networks.join(' '));
  return parts.length ? parts.join(', ') : 'none';
}

// The limits fields (a `.limits` group of named inputs, in the create form and the edit
// dialog) as a Limits object; an empty field limits nothing. Throws on a value that cannot be sent.
function readLimits(group) {
  const field = (name) => group.querySelector('[name=' + name + ']');
  const number = (name, label) => {
    const input = field(name);
    if (input.validity.badInput) throw new Error(label + ': not a number');
    if (input.value.trim() === '') return undefined;
    const n = Number(input.value);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(label + ': must be a whole number of at least 1');
    return n;
  };
  const limits = {};
  const requests = number('requests', 'requests');
  const burst = number('burst', 'burst');
  if (requests !== undefined) {
    limits.rate = { requests, window_secs: Number(field('window').value) };
    if (burst !== undefined) limits.rate.burst = burst;
  } else if (burst !== undefined) {
    throw new Error('burst: set the requests of a rate limit too');
  }
  const quota = number('quota', 'quota');
  if (quota !== undefined) limits.quota = quota;
  const networks = field('networks').value.split(/[\s,]+/).filter((n) => n !== '');
  if (networks.length) limits.networks = networks;
  return limits;
}

// Fills the limits fields from a Limits object (a window the select lacks gets its own option).
function fillLimits(group, limits) {
  const field = (name) => group.querySelector('[name=' + name + ']');
  const { rate, quota, networks } = limits || {};
  const windows = field('window');
  windows.querySelectorAll('option[data-extra]').forEach((o) => o.remove());
  const secs = String(rate ? rate.window_secs : 60);
  if (![...windows.options].some((o) => o.value === secs)) {
    const extra = new Option('per ' + secs + ' seconds', secs);
    extra.dataset.extra = '';
    windows.add(extra);
  }
  windows.value = secs;
  field('requests').value = rate ? rate.requests : '';
  field('burst').value = rate && rate.burst !== undefined ? rate.burst : '';
  field('quota').value = quota !== undefined ? quota : '';
  field('networks').value = networks ? networks.join(', ') : '';
}

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
    list.push(button('Edit limits', 'secondary', () => editLimits(token)));
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
    tr.append(status, cell(day(t.created_at)), cell(day(t.expires_at)), cell(relative(t.last_used_at), 'last-used'),
      cell(limitsText(t.limits), 'limits'), cell(t.created_by));
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

let editing = null;

function editLimits(token) {
  editing = token;
  $('limits-title').textContent = 'Limits of "' + token.name + '"';
  fillLimits($('edit-limits'), token.limits);
  $('limits-error').textContent = '';
  $('limits-save').disabled = false;
  $('limits-dialog').showModal();
  $('edit-limits').querySelector('input').focus();
}

async function saveLimits(event) {
  event.preventDefault();
  const token = editing;
  $('limits-error').textContent = '';
  try {
    const limits = readLimits($('edit-limits'));
    $('limits-save').disabled = true;
    await api('PUT', '/v1/tokens/' + token.id + '/limits', limits);
    $('limits-dialog').close();
    await loadTokens(true);
  } catch (e) {
    $('limits-error').textContent = e.message;
  } finally {
    $('limits-save').disabled = false;
  }
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
  $('limits-dialog').close();
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
}

document.addEventListener('DOMContentLoaded', () => {
  for (const id of ['create-limits', 'edit-limits']) $(id).append($('limits-fields').content.cloneNode(true));
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
      const limits = readLimits($('create-limits'));
      if (Object.keys(limits).length) body.limits = limits;
      const created = await api('POST', '/v1/tokens', body);
      $('create-error').textContent = '';
      $('create-name').value = '';
      fillLimits($('create-limits'), null);
      $('create-limits-part').open = false;
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

  $('limits-form').addEventListener('submit', saveLimits);
  $('limits-cancel').addEventListener('click', () => $('limits-dialog').close());

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
