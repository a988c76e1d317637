// The Tokens page: talks to /v1 with the credential kept in sessionStorage (this tab only).
// Every API call goes through call(); the key/token sign-in is signIn(). Text from the server
// (token names, actors, owners) is only ever set as text (textContent), never as markup.
'use strict';

const STORAGE_KEY = 'tokengate.credential';
const $ = (id) => document.getElementById(id);
let session = null;
let cursor = null;
let filterTimer = null;
let auditEvents = [];

// The admin roles (beyond operator keys) that may read the audit log.
const AUDIT_ADMIN_ROLES = ['auditor', 'operator'];
const AUDIT_ACTIONS = ['create', 'suspend', 'activate', 'revoke', 'restore', 'delete', 'rotate', 'limits'];

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The one way to the admin API: authentication, JSON in and out, errors as ApiError. A 401
// once signed in ends the session (the credential was revoked or expired meanwhile).
async function call(method, path, body) {
  const headers = {};
  const key = sessionStorage.getItem(STORAGE_KEY);
  if (key) headers.Authorization = 'Bearer ' + key;
  // Signed in without a key (the session cookie, or an auth proxy's headers): changes carry
  // the CSRF value the session handed out.
  const caller = session && session.caller;
  if (!key && caller && method !== 'GET') headers['X-CSRF-Token'] = caller.csrf_token || '1';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const e = data && data.error;
    const message = e ? (e.field ? e.field + ': ' : '') + e.message : 'HTTP ' + response.status;
    if (response.status === 401 && session) signOut('Your sign-in is no longer valid (the token may have been revoked or has expired). Sign in again.');
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
// `2026-11-26 14:03:07 UTC`.
const moment = (iso) => (iso ? iso.slice(0, 19).replace('T', ' ') + ' UTC' : '-');

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

// A table cell; `label` names it when rows are stacked as cards on narrow screens.
function cell(text, className, label) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  if (label) td.dataset.label = label;
  return td;
}

// A button whose accessible name includes what it acts on (`Revoke laptop`).
function button(label, className, name, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.className = className;
  if (name) b.setAttribute('aria-label', label + ' ' + name);
  b.addEventListener('click', onClick);
  return b;
}

// Errors belong to the last attempt: once anything succeeds, earlier failures are gone.
function clearErrors() {
  for (const id of ['create-error', 'list-error', 'audit-error']) $(id).textContent = '';
}

// Runs a change; on success clears stale errors and reloads the list, on failure shows why.
async function change(work, errorId) {
  try {
    await work();
  } catch (e) {
    $(errorId || 'list-error').textContent = e.message;
    return false;
  }
  clearErrors();
  await loadTokens(true);
  return true;
}

function actionsFor(token) {
  const act = (action) => () => change(() => call('POST', '/v1/tokens/' + token.id + '/' + action));
  const name = token.name;
  const list = [button('Details', 'secondary', 'of ' + name, () => showDetail(token))];
  if (token.status === 'active') list.push(button('Suspend', 'secondary', name, act('suspend')));
  if (token.status === 'suspended') list.push(button('Activate', 'secondary', name, act('activate')));
  if (token.status !== 'revoked') {
    if (token.status !== 'expired') list.push(button('Rotate', 'secondary', name, () => rotate(token)));
    list.push(button('Edit limits', 'secondary', 'of ' + name, () => editLimits(token)));
    list.push(button('Revoke', 'danger', name, () => confirmByName(token, 'Revoke', 'Anything using this token stops working at once.', act('revoke'))));
  }
  if (token.status === 'revoked') {
    if (session.allow_restore) list.push(button('Restore', 'secondary', name, act('restore')));
    list.push(button('Delete', 'danger', name, () => confirmByName(token, 'Delete', 'The token is removed for good.',
      () => change(() => call('DELETE', '/v1/tokens/' + token.id)))));
  }
  return list;
}

function render(tokens, append) {
  const body = document.querySelector('#tokens tbody');
  if (!append) body.replaceChildren();
  for (const t of tokens) {
    const tr = document.createElement('tr');
    tr.dataset.id = t.id;
    tr.append(cell(t.name, 'name'), cell(t.display, 'token', 'Token'));
    const status = document.createElement('td');
    status.dataset.label = 'Status';
    const badge = document.createElement('span');
    badge.className = 'badge status-' + t.status;
    badge.textContent = t.status;
    status.append(badge);
    tr.append(status, cell(day(t.created_at), 'created', 'Created'), cell(day(t.expires_at), 'expires', 'Expires'),
      cell(relative(t.last_used_at), 'last-used', 'Last used'), cell(limitsText(t.limits), 'limits', 'Limits'),
      cell(t.created_by, 'created-by', 'Created by'));
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
  if ($('owner-filter').value) params.set('owner', $('owner-filter').value);
  if (cursor) params.set('cursor', cursor);
  try {
    const page = await call('GET', '/v1/tokens?' + params);
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
    await call('PUT', '/v1/tokens/' + token.id + '/limits', limits);
    $('limits-dialog').close();
    clearErrors();
    await loadTokens(true);
  } catch (e) {
    $('limits-error').textContent = e.message;
  } finally {
    $('limits-save').disabled = false;
  }
}

// Shows a secret once (after creation or rotation); `note` says what became of the old one.
function showSecret(issued, title, note) {
  $('created-title').textContent = title;
  $('new-token').textContent = issued.token;
  $('new-header').textContent = 'Authorization: ' + issued.authorization_header;
  $('created-note').textContent = note || '';
  $('created-note').hidden = !note;
  $('copy-status').textContent = '';
  $('created-dialog').showModal();
}

let rotating = null;

function rotate(token) {
  rotating = token;
  $('rotate-title').textContent = 'Rotate "' + token.name + '"';
  $('rotate-error').textContent = '';
  $('rotate-ok').disabled = false;
  $('rotate-dialog').showModal();
  $('rotate-grace').focus();
}

async function saveRotation(event) {
  event.preventDefault();
  const token = rotating;
  $('rotate-error').textContent = '';
  $('rotate-ok').disabled = true;
  try {
    const issued = await call('POST', '/v1/tokens/' + token.id + '/rotate', { grace_seconds: Number($('rotate-grace').value) });
    $('rotate-dialog').close();
    clearErrors();
    const until = issued.previous_secret_valid_until;
    showSecret(issued, 'New secret for "' + token.name + '"',
      until ? 'The previous secret keeps working until ' + moment(until) + '.' : 'The previous secret no longer works.');
    await loadTokens(true);
  } catch (e) {
    $('rotate-error').textContent = e.message;
  } finally {
    $('rotate-ok').disabled = false;
  }
}

// The detail view: everything the API shows of one token, read fresh.
async function showDetail(token) {
  const dialog = $('detail-dialog');
  const list = $('detail-list');
  $('detail-title').textContent = token.name;
  $('detail-error').textContent = '';
  list.replaceChildren();
  dialog.showModal();
  $('detail-close').focus();
  let t;
  try {
    t = await call('GET', '/v1/tokens/' + token.id);
  } catch (e) {
    $('detail-error').textContent = e.message;
    return;
  }
  const rows = [
    ['Id', t.id], ['Token', t.display], ['Kind', t.kind], ['Owner', t.owner], ['Status', t.status],
    ['Roles', t.roles.join(', ') || 'none'], ['Scopes', t.scopes.join(', ') || 'none'],
    ['Created', moment(t.created_at) + ' by ' + t.created_by], ['Expires', moment(t.expires_at)],
    ['Last used', t.last_used_at ? moment(t.last_used_at) + ' (' + relative(t.last_used_at) + ')' : 'never'],
    ['Last client address', t.last_used_from || (t.last_used_at ? 'not recorded' : '-')],
    ['Limits', limitsText(t.limits)],
  ];
  if (t.previous_secret_valid_until) rows.push(['Previous secret works until', moment(t.previous_secret_valid_until)]);
  for (const [label, value] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    dd.dataset.field = label;
    list.append(dt, dd);
  }
}

// Whether the signed-in caller may read the audit log: operators (keys, or people whose session
// names the admin role operator) and auditors.
function mayAudit() {
  if (session.caller.kind === 'operator') return true;
  const admin = session.caller.admin !== undefined ? session.caller.admin : session.admin;
  return AUDIT_ADMIN_ROLES.includes(admin);
}

async function loadAudit() {
  try {
    const data = await call('GET', '/v1/audit?limit=1000');
    auditEvents = data.events;
    $('audit-error').textContent = '';
  } catch (e) {
    $('audit-error').textContent = e.message;
    return;
  }
  const actor = $('audit-actor');
  const chosen = actor.value;
  const actors = [...new Set(auditEvents.map((e) => e.actor))].sort();
  actor.replaceChildren(new Option('anyone', ''), ...actors.map((a) => new Option(a, a)));
  actor.value = actors.includes(chosen) ? chosen : '';
  renderAudit();
}

// Filters the loaded events in the page (the API returns the newest ones, unfiltered).
function renderAudit() {
  const token = $('audit-token').value.trim().toLowerCase();
  const actor = $('audit-actor').value;
  const action = $('audit-action').value;
  const shown = auditEvents.filter((e) => (!actor || e.actor === actor) && (!action || e.action === action)
    && (!token || e.token_id.toLowerCase() === token || e.token_name.toLowerCase().includes(token)));
  const body = document.querySelector('#audit tbody');
  body.replaceChildren(...shown.map((e) => {
    const tr = document.createElement('tr');
    const name = cell(e.token_name, 'token-name', 'Token');
    const id = document.createElement('span');
    id.className = 'id';
    id.textContent = ' ' + e.token_id;
    name.append(id);
    tr.append(cell(moment(e.at), 'at', 'When'), cell(e.actor, 'actor', 'Actor'), cell(e.action, 'action', 'Action'), name,
      cell(e.owner, 'owner', 'Owner'));
    return tr;
  }));
  $('audit-count').textContent = shown.length + ' of ' + auditEvents.length + ' events';
}

// Shows one view: false (tokens), true (the audit log) or 'people'.
function showView(view) {
  const name = view === true ? 'audit' : view || 'tokens';
  for (const v of ['tokens', 'audit', 'people']) {
    $(v + '-view').hidden = v !== name;
    $('show-' + v).setAttribute('aria-pressed', String(v === name));
  }
  if (name === 'audit') loadAudit();
  if (name === 'people') loadPeople(true);
}

// The people tokens belong to (operators and auditors): `GET /v1/principals`, a page at a time.
let people = [];
let peopleCursor = null;

async function loadPeople(fresh) {
  try {
    const query = fresh || !peopleCursor ? '' : '&cursor=' + encodeURIComponent(peopleCursor);
    const data = await call('GET', '/v1/principals?limit=200' + query);
    people = fresh ? data.principals : people.concat(data.principals);
    peopleCursor = data.next_cursor || null;
    $('people-error').textContent = '';
  } catch (e) {
    $('people-error').textContent = e.message;
    return;
  }
  renderPeople();
}

function renderPeople() {
  const needle = $('people-filter').value.trim().toLowerCase();
  const shown = people.filter((p) => !needle || [p.id, p.display_name, p.email || '', ...(p.groups || [])]
    .some((v) => v.toLowerCase().includes(needle)));
  $('people').querySelector('tbody').replaceChildren(...shown.map((p) => {
    const tr = document.createElement('tr');
    tr.append(
      cell(p.id, 'id', 'Id'),
      cell(p.display_name, '', 'Name'),
      cell(p.email || '', '', 'Email'),
      cell(p.org || '', '', 'Organization'),
      cell((p.roles || []).join(', '), '', 'Roles'),
      cell((p.groups || []).join(', '), '', 'Groups'),
      cell(p.admin || '', '', 'Admin'),
    );
    const status = document.createElement('td');
    status.dataset.label = 'Status';
    const badge = document.createElement('span');
    badge.className = 'badge status-' + (p.deactivated ? 'suspended' : 'active');
    badge.textContent = p.deactivated ? 'deactivated' : 'active';
    status.append(badge);
    tr.append(status);
    return tr;
  }));
  $('people-count').textContent = shown.length + ' of ' + people.length + (peopleCursor ? '+' : '') + ' people';
  $('people-more').hidden = !peopleCursor;
}

// A checkbox per choice in `container` (name `name`), the `checked` ones ticked.
function checkboxes(container, name, choices, checked) {
  container.replaceChildren(...choices.map((value) => {
    const label = document.createElement('label');
    label.className = 'check';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.name = name;
    box.value = value;
    box.checked = checked.includes(value);
    label.append(box, ' ' + value);
    return label;
  }));
}

const ticked = (container) => [...container.querySelectorAll('input:checked')].map((b) => b.value);
const creatingKind = () => document.querySelector('input[name=kind]:checked').value;

// The create form for this caller: roles and scopes to pick are what they hold (operators: the
// configured roles and the scopes the route rules name); organization tokens for those who may.
function setUpCreateForm() {
  const caller = session.caller;
  const operator = caller.kind === 'operator';
  const roles = operator ? session.roles : caller.roles;
  const scopes = operator ? session.scopes || [] : caller.scopes;
  checkboxes($('create-roles'), 'role', roles, session.default_roles.filter((r) => roles.includes(r)));
  $('no-roles').hidden = roles.length > 0;
  checkboxes($('create-scopes'), 'scope', scopes, []);
  $('scopes-field').hidden = scopes.length === 0;
  $('kind-field').hidden = !(operator || caller.admin_of);
  // An organization's admin sees their own tokens or their organization's (one list at a time).
  $('owner-filter').replaceChildren(new Option('Your tokens', ''));
  if (!operator && caller.admin_of) $('owner-filter').add(new Option('Organization ' + caller.admin_of, caller.admin_of));
  $('owner-filter-field').hidden = operator || !caller.admin_of;
  document.querySelector('input[name=kind][value=personal]').checked = true;
  kindChanged();
}

function kindChanged() {
  const caller = session.caller;
  const operator = caller.kind === 'operator';
  const org = creatingKind() === 'organization';
  $('owner-field').hidden = !operator;
  $('create-owner').required = operator;
  $('owner-label').textContent = org ? 'Organization (id)' : 'Owner (principal id)';
  $('create-owner').placeholder = org ? 'e.g. acme' : 'e.g. alice';
  $('org-note').hidden = !(org && !operator);
  $('org-note').textContent = org && !operator ? 'For the organization ' + caller.admin_of + ': it keeps working whoever leaves.' : '';
}

// Reads the session and shows the page; `first`: right after the person typed a credential;
// `quiet`: a first look for a sign-in cookie or proxy headers (no message when there is none).
async function start(first, quiet) {
  try {
    session = await call('GET', '/v1/session');
  } catch (e) {
    if (quiet && e.status === 401) return signOut();
    signOut(e.status === 401
      ? (first ? 'That admin key or token was not accepted. Check it and paste it again.'
        : 'Your sign-in is no longer valid (the token may have been revoked or has expired). Sign in again.')
      : e.message);
    return;
  }
  const caller = session.caller;
  $('who').textContent = caller.kind === 'operator' ? 'Signed in with the admin key ' + caller.key : 'Signed in as ' + caller.display_name + ' (' + caller.id + ')';
  $('create-expiry').replaceChildren(...session.expiry_days.map((d) => new Option(d + ' days', String(d))));
  setUpCreateForm();
  $('show-audit').hidden = !mayAudit();
  $('show-people').hidden = !mayAudit();
  showView(false);
  clearErrors();
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  await loadTokens(true);
}

// Sign-in with a pasted admin key or personal token: the one place a credential is taken in.
async function signIn(credential) {
  sessionStorage.setItem(STORAGE_KEY, credential);
  $('sign-in-error').textContent = '';
  await start(true);
}

// Ends a cookie session at the server too (the cookie is HttpOnly), then shows the sign-in.
async function endSession() {
  if (session && session.caller.signed_in_with === 'session') {
    await call('POST', '/auth/logout').catch(() => {});
  }
  signOut();
}

function signOut(message) {
  sessionStorage.removeItem(STORAGE_KEY);
  session = null;
  auditEvents = [];
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
}

async function createToken(event) {
  event.preventDefault();
  const body = {
    name: $('create-name').value,
    expires_in_days: Number($('create-expiry').value),
    roles: ticked($('create-roles')),
    scopes: ticked($('create-scopes')),
  };
  if (creatingKind() === 'organization') body.kind = 'organization';
  if (session.caller.kind === 'operator') body.owner = $('create-owner').value.trim();
  try {
    const limits = readLimits($('create-limits'));
    if (Object.keys(limits).length) body.limits = limits;
    const created = await call('POST', '/v1/tokens', body);
    clearErrors();
    $('create-name').value = '';
    fillLimits($('create-limits'), null);
    $('create-limits-part').open = false;
    showSecret(created, 'Token created');
    // Show the list the new token is in.
    if (!$('owner-filter-field').hidden) $('owner-filter').value = body.kind === 'organization' ? session.caller.admin_of : '';
    await loadTokens(true);
  } catch (e) {
    $('create-error').textContent = e.message;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  for (const id of ['create-limits', 'edit-limits']) $(id).append($('limits-fields').content.cloneNode(true));
  $('audit-action').append(...AUDIT_ACTIONS.map((a) => new Option(a, a)));
  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const credential = $('credential').value.trim();
    $('credential').value = '';
    await signIn(credential);
  });
  $('sign-out').addEventListener('click', endSession);

  $('create-form').addEventListener('submit', createToken);
  for (const radio of document.querySelectorAll('input[name=kind]')) radio.addEventListener('change', kindChanged);

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
  $('rotate-form').addEventListener('submit', saveRotation);
  $('rotate-cancel').addEventListener('click', () => $('rotate-dialog').close());
  $('detail-close').addEventListener('click', () => $('detail-dialog').close());

  $('confirm-input').addEventListener('input', () => {
    $('confirm-ok').disabled = $('confirm-input').value !== $('confirm-name').textContent;
  });
  $('filter').addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => loadTokens(true), 200);
  });
  $('more').addEventListener('click', () => loadTokens(false));
  $('owner-filter').addEventListener('change', () => loadTokens(true));

  $('show-tokens').addEventListener('click', () => showView(false));
  $('show-audit').addEventListener('click', () => showView(true));
  $('show-people').addEventListener('click', () => showView('people'));
  $('people-refresh').addEventListener('click', () => loadPeople(true));
  $('people-more').addEventListener('click', () => loadPeople(false));
  $('people-filter').addEventListener('input', renderPeople);
  $('audit-refresh').addEventListener('click', loadAudit);
  for (const id of ['audit-token', 'audit-actor', 'audit-action']) $(id).addEventListener('input', renderAudit);

  fetch('/auth/methods', { cache: 'no-store' }).then((r) => r.json()).then((m) => {
    if (m.oidc) {
      $('sso').href = m.login_url + '?return_to=' + encodeURIComponent(location.pathname);
      $('sso-choice').hidden = false;
    }
  }).catch(() => {});
  if (sessionStorage.getItem(STORAGE_KEY)) start(false);
  else start(false, true);
});
