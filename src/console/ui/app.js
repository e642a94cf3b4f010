/* bzzz web console, served under /ui/; it reads only its node's HTTP API.
 * - Helpers: el()/svg() build the DOM (API strings only ever become text or
 *   attributes); api() is the one fetch wrapper (bearer token or session
 *   cookie + CSRF, JSON, error envelope -> ApiError); backoff()/sleep() pace
 *   every long poll.
 * - Auth: boot() reads /auth/status then /api/v1/me, else shows sign-in; a
 *   401 ends the session. wbtn() builds a write control only for a caller
 *   holding its permission.
 * - Router: #/<view>[/<id>][?query]; route() aborts the old view and its
 *   long polls, then mounts the next from part()s, which re-render only when
 *   their data changed (focus and typing survive the live updates).
 * - Live loop: liveLoop() long-polls /api/v1/console/history, keeps the
 *   samples, refreshes the view once per answer, backs off on failure and
 *   notices a restarted node (#conn-status).
 * - Views: the view* functions, at the end.
 */
'use strict';
(() => {
const TOKEN = 'bzzz.token';
const STATES = ['queued', 'assigned', 'running', 'succeeded', 'failed', 'retried', 'dead', 'cancelled', 'escalated'];
const TERMINAL = ['succeeded', 'dead', 'cancelled', 'escalated'];
const ROOM_STATES = ['open', 'decided', 'escalated', 'resolved', 'archived'];
// No `decision`: only the room itself and operators' resolutions decide.
const MSG_TYPES = ['help_request', 'help_response', 'plan_proposed', 'agreement', 'objection', 'dependency_alert', 'escalation'];
const WAIT = 25000;
const S = {
	status: {}, me: null, perms: new Set(), live: null, view: null, names: new Map(),
	samples: [], seq: 0, changes: [], leadership: [], scaling: [], nodeKey: null, holdUntil: 0,
	det: null, allNodes: undefined, tf: { before: null }, rf: {}, found: null,
};
const $ = (s) => document.querySelector(s);
const enc = encodeURIComponent;

// ---- DOM

function add(n, kids) {
	for (const k of kids.flat(9)) if (k != null && k !== false) n.append(k instanceof Node ? k : String(k));
	return n;
}
function el(tag, attrs, ...kids) {
	const n = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v == null || v === false) continue;
		if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
		else n.setAttribute(k, v === true ? '' : v);
	}
	return add(n, kids);
}
function svg(tag, attrs, ...kids) {
	const n = document.createElementNS('http://www.w3.org/2000/svg', tag);
	for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
	return add(n, kids);
}
const pad = (n) => String(n).padStart(2, '0');
const hms = (ms) => { const d = new Date(ms); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };
function time(t) {
	const ms = typeof t === 'string' ? Date.parse(t) : t;
	if (!ms || !isFinite(ms)) return '—';
	const d = new Date(ms);
	const day = d.toDateString() === new Date().toDateString() ? '' : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `;
	return el('time', { datetime: d.toISOString(), title: d.toISOString() }, day + hms(ms));
}
function num(v, unit = '') {
	if (typeof v !== 'number' || !isFinite(v)) return '—';
	const a = Math.abs(v);
	return (a >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(a >= 10 ? 1 : 2)) + unit;
}
const nameOf = (id) => (id && S.names.get(id)) || '';
const mono = (text, title) => el('span', { class: 'mono', title }, text);
const node = (id) => (id ? mono(nameOf(id) ? `${nameOf(id)} (${id.slice(0, 8)})` : `${id.slice(0, 12)}…`, id) : '—');
const badge = (s) => el('span', { class: `b b-${String(s).replace(/[^a-z_]/gi, '')}` }, s || 'unknown');
const note = (text, kind = 'info') => el('p', { class: `notice ${kind}` }, text);
const errText = (e) => (e.status ? `${e.message} (HTTP ${e.status})` : e.message);
const dl = (pairs) => el('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [el('dt', null, k), el('dd', null, v == null || v === '' ? '—' : v)]));
const card = (title, ...kids) => el('section', { class: 'card' }, el('h2', null, title), kids);
const link = (href, text, cls) => el('a', { href, class: cls }, text);
const taskA = (id) => link(`#/tasks/${enc(id)}`, id, 'mono');
const ucxlA = (a) => link(`#/ucxl?address=${enc(a)}`, a, 'mono wrap');
const wrap = (text, cls = '') => el('span', { class: `wrap ${cls}` }, text || '');
const last = (a) => a[a.length - 1];
function table(caption, heads, rows, attrs) {
	heads = heads.filter(Boolean);
	return el('div', { class: 'tw' }, el('table', attrs, el('caption', null, caption),
		el('thead', null, el('tr', null, heads.map((h) => el('th', { scope: 'col' }, h)))),
		el('tbody', null, rows.length ? rows : el('tr', null, el('td', { colspan: heads.length, class: 'muted' }, 'Nothing to show')))));
}
// The first cell heads its row; empty cells show a dash, `false` ones are
// columns the caller may not use.
const row = (attrs, first, ...cells) => el('tr', attrs, el('th', { scope: 'row' }, first),
	cells.filter((x) => x !== false).map((x) => el('td', null, x == null || x === '' ? '—' : x)));

// ---- API

class ApiError extends Error {
	constructor(status, message, retryAfter, body) {
		super(message);
		Object.assign(this, { name: 'ApiError', status, code: (body && body.error && body.error.code) || 'http', retryAfter, body });
	}
}
const aborted = () => new DOMException('aborted', 'AbortError');
// Nobody needs to see an abort, or a 401 (the session ended already).
const quiet = (e) => e.name === 'AbortError' || e.status === 401;
const retryable = (e) => e.status === 0 || e.status === 429 || (e.status >= 500 && e.status <= 504);
function token() { try { return sessionStorage.getItem(TOKEN) || ''; } catch { return ''; } }
function setToken(t) { try { if (t) sessionStorage.setItem(TOKEN, t); else sessionStorage.removeItem(TOKEN); } catch { /* storage off */ } }

// opts: method, body, signal, timeout, token, auth (false: a 401 is the caller's business).
async function api(path, opts = {}) {
	const method = opts.method || 'GET';
	const headers = { Accept: 'application/json' };
	const t = opts.token || token();
	const csrf = /(?:^|;\s*)bzzz_csrf=([^;]*)/.exec(document.cookie);
	if (t) headers.Authorization = `Bearer ${t}`;
	else if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = decodeURIComponent(csrf[1]);
	if (opts.body) headers['Content-Type'] = 'application/json';
	const ctl = new AbortController();
	const outer = opts.signal;
	const stop = () => ctl.abort();
	if (outer) { if (outer.aborted) stop(); else outer.addEventListener('abort', stop); }
	const timer = opts.timeout && setTimeout(stop, opts.timeout);
	let res;
	let text;
	try {
		res = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store', signal: ctl.signal,
			body: opts.body && JSON.stringify(opts.body) });
		text = await res.text();
	} catch {
		if (outer && outer.aborted) throw aborted();
		throw new ApiError(0, ctl.signal.aborted ? 'the request timed out' : 'the node cannot be reached');
	} finally {
		clearTimeout(timer);
		if (outer) outer.removeEventListener('abort', stop);
	}
	let data = null;
	try { data = text ? JSON.parse(text) : null; } catch { data = text; }
	if (res.ok) return data;
	const m = data && data.error && data.error.message;
	const ra = parseFloat(res.headers.get('Retry-After'));
	if (res.status === 401 && opts.auth !== false) sessionEnded();
	throw new ApiError(res.status, typeof m === 'string' && m ? m : `HTTP ${res.status}`, isFinite(ra) ? ra : null, data);
}
const get = (path, signal) => api(path, { signal });
const post = (path, body) => api(path, { method: 'POST', body });
// UCXI wraps answers in {"response": {code, message, data}}.
const ucxi = (path, signal) => get(path, signal).then((r) => (r && r.response && r.response.data) || {});
// The health routes answer 503 with their usual body when the node is unhealthy.
const health = (path, signal) => get(path, signal).catch((e) => {
	if (e.status === 503 && e.body && e.body.status) return e.body;
	throw e;
});
// A source that may fail alone, without failing its part.
const soft = (p) => p.catch((e) => { if (quiet(e)) throw e; return { error: e.message }; });
const can = (p) => S.perms.has(p) || S.perms.has('*') || S.perms.has(`${p.split(':')[0]}:*`);
const cannot = (what, perm) => note(`Your role cannot read ${what} (needs ${perm})`, 'warn');
function lacks(c, perm, what) {
	if (can(perm)) return false;
	c.add(cannot(what, perm));
	return true;
}

// ---- back-off

function backoff() {
	let n = 0;
	return {
		get n() { return n; },
		reset() { n = 0; },
		// 1 s doubling to 30 s, jittered so that the consoles of a restarted
		// node do not all return at once; Retry-After wins.
		delay(retryAfter) {
			n += 1;
			if (retryAfter >= 0 && retryAfter !== null) return Math.min(Math.max(retryAfter * 1000, 1000), 300000);
			return Math.round(Math.min(30000, Math.max(1000, 1000 * 2 ** Math.min(n - 1, 5) * (0.8 + Math.random() * 0.4))));
		},
	};
}
// Waits ms, calling tick(seconds left) once a second; rejects on abort.
function sleep(ms, signal, tick) {
	return new Promise((resolve, reject) => {
		const end = Date.now() + ms;
		let t = 0;
		const quit = () => { clearTimeout(t); reject(aborted()); };
		const step = () => {
			const left = end - Date.now();
			if (left <= 0) { if (signal) signal.removeEventListener('abort', quit); resolve(); return; }
			if (tick) tick(Math.ceil(left / 1000));
			t = setTimeout(step, Math.min(1000, left));
		};
		if (signal) { if (signal.aborted) { reject(aborted()); return; } signal.addEventListener('abort', quit); }
		step();
	});
}
const lost = (n) => (s) => `Connection lost — retrying in ${s} s (attempt ${n})`;
// A view's long poll: url() until handle() returns false, backing off like
// the live loop; an answer a retry would not change (4xx) ends it.
async function longPoll(signal, url, handle, say) {
	const bo = backoff();
	while (!signal.aborted) {
		try {
			const r = await api(url(), { signal, timeout: WAIT + 15000 });
			if (bo.n) say('');
			bo.reset();
			if (handle(r) === false) return;
		} catch (e) {
			if (quiet(e)) return;
			if (!retryable(e)) { say(`Live updates stopped: ${e.message}`); return; }
			const msg = lost(bo.n + 1);
			try { await sleep(bo.delay(e.retryAfter), signal, (s) => say(msg(s))); } catch { return; }
		}
	}
}

// ---- banner, toast, confirmation, write controls

let connTimer = 0;
function conn(state, text, holdMs) {
	const b = $('#conn-status');
	if (b.dataset.state !== state) b.dataset.state = state;
	if (b.textContent !== text) b.textContent = text;
	clearTimeout(connTimer);
	S.holdUntil = holdMs ? Date.now() + holdMs : 0;
	if (holdMs) connTimer = setTimeout(() => conn('ok', 'Live'), holdMs);
}
let toastTimer = 0;
function toast(text, kind = 'ok') {
	const t = $('#toast');
	t.dataset.kind = kind;
	t.textContent = text;
	t.classList.add('show');
	clearTimeout(toastTimer);
	toastTimer = setTimeout(() => t.classList.remove('show'), 10000);
}
function confirmDo(text, okLabel, invoker) {
	const d = $('#confirm');
	$('#confirm-text').textContent = text;
	$('#confirm-ok').textContent = okLabel;
	return new Promise((resolve) => {
		d.addEventListener('close', () => { refocus(invoker); resolve(d.returnValue === 'ok'); }, { once: true });
		d.returnValue = '';
		d.showModal();
		$('#confirm-cancel').focus();
	});
}
// Focus back on the invoking button, or on its twin when a refresh rebuilt it.
function refocus(b) {
	if (b.isConnected) { b.focus(); return; }
	([...document.querySelectorAll('#view button')].find((x) => fkey(x) === fkey(b)) || $('#view')).focus();
}
// A write control, only for callers holding perm. ask: the question, or a
// function giving it (none: input refused); done(answer): the outcome.
function wbtn(perm, action, label, ask, run, done, aria) {
	if (!can(perm)) return false;
	const b = el('button', { type: 'button', class: 'wb', 'data-action': action, 'aria-label': aria }, label);
	b.addEventListener('click', async () => {
		const q = typeof ask === 'function' ? ask() : ask;
		// Marked busy rather than disabled: a disabled button drops the focus.
		if (!q || b.getAttribute('aria-disabled') || !(await confirmDo(q, label, b))) return;
		b.setAttribute('aria-disabled', 'true');
		try {
			const r = await run();
			toast(typeof done === 'function' ? done(r || {}) : done);
		} catch (e) {
			if (!quiet(e)) toast(errText(e), 'error');
		}
		b.removeAttribute('aria-disabled');
		if (S.view) await S.view.refresh().catch(() => {});
		if (document.activeElement === document.body) refocus(b);
	});
	return b;
}
const refuse = (text, input) => { toast(text, 'error'); input.focus(); };

// ---- parts

const fkey = (n) => [n.tagName, n.getAttribute('href'), n.dataset.action, n.dataset.k, n.getAttribute('aria-label'), n.id].join('|');
// load(signal) -> data, render(data) -> Node. Returns the part's run().
async function part(c, load, render, keyOf = JSON.stringify) {
	const box = c.add(el('div')).lastChild;
	let seen;
	// A control pressed and not yet released keeps its place: a new
	// rendering waits for the release and the click it makes (a control
	// replaced between the two never gets that click), and also while a
	// confirmation is open (the invoking button stays put). Mouse, touch,
	// and the space bar, whose click comes with the key's release.
	let pressed = false, held = null, afterRelease = 0;
	const showHeld = () => {
		if (pressed || !held || c.signal.aborted || $('#confirm').open) return;
		const out = held;
		held = null;
		// The focused control is found again in the new rendering.
		const a = document.activeElement;
		const key = a && box.contains(a) && fkey(a);
		box.replaceChildren(out());
		const twin = key && [...box.querySelectorAll('a,button,input,select,textarea')].find((n) => fkey(n) === key);
		if (twin && twin !== document.activeElement) twin.focus();
	};
	const press = () => { pressed = true; };
	// Released: draw after the click the release makes (a touch's click
	// comes after the browser's tap handling), or after half a second
	// without one (released elsewhere, or a press that turned into a drag).
	const release = () => {
		if (!pressed) return;
		pressed = false;
		clearTimeout(afterRelease);
		afterRelease = setTimeout(showHeld, 500);
	};
	const clicked = () => {
		if (pressed || !afterRelease) return;
		clearTimeout(afterRelease);
		afterRelease = 0;
		setTimeout(showHeld);  // once this click has been dispatched
	};
	const on = { capture: true, signal: c.signal };
	box.addEventListener('pointerdown', (ev) => { if (ev.button === 0) press(); });
	box.addEventListener('keydown', (ev) => { if (ev.key === ' ') press(); });
	for (const type of ['pointerup', 'pointercancel', 'keyup', 'dragstart', 'contextmenu']) document.addEventListener(type, release, on);
	document.addEventListener('click', clicked, on);
	document.addEventListener('visibilitychange', release, on);
	window.addEventListener('blur', release, on);
	// A rendering held while a confirmation was open, once it closes.
	$('#confirm').addEventListener('close', () => setTimeout(showHeld), on);
	const run = async () => {
		try {
			const data = await load(c.signal);
			const key = keyOf(data);
			if (c.signal.aborted) return;
			if (key !== seen) {
				seen = key;
				held = () => render(data);
			}
		} catch (e) {
			if (quiet(e) || c.signal.aborted) return;
			if (seen !== e.message) {
				seen = e.message;
				held = () => note(errText(e), 'error');
			}
		}
		showHeld();
	};
	c.parts.push(run);
	await run();
	return run;
}

// ---- auth

async function boot() {
	window.addEventListener('hashchange', () => { if (S.me) route(); });
	$('#skip').addEventListener('click', (ev) => { ev.preventDefault(); ($('#view').hidden ? $('#token-input') : $('#view')).focus(); });
	$('#signin-form').addEventListener('submit', (ev) => { ev.preventDefault(); signIn(); });
	$('#signout').addEventListener('click', signOut);
	$('#confirm-ok').addEventListener('click', () => $('#confirm').close('ok'));
	$('#confirm-cancel').addEventListener('click', () => $('#confirm').close('cancel'));
	// Refusals show where they happen; this keeps a stray one out of the console.
	window.addEventListener('unhandledrejection', (ev) => {
		if (ev.reason && /^(Api|Abort)Error$/.test(ev.reason.name)) ev.preventDefault();
	});
	const bo = backoff();
	const had = !!token();
	for (;;) {
		try {
			S.status = (await api('/auth/status', { auth: false })) || {};
			if (!had && !S.status.signed_in) return showSignin('');
			return startApp(await api('/api/v1/me', { auth: false }));
		} catch (e) {
			if (e.status === 401) { setToken(''); return showSignin('Your session ended; sign in again'); }
			if (!retryable(e)) { showSignin(''); $('#signin-error').textContent = e.message; return; }
			const msg = lost(bo.n + 1);
			await sleep(bo.delay(e.retryAfter), null, (s) => conn('retrying', msg(s)));
		}
	}
}

async function signIn() {
	const input = $('#token-input');
	const t = input.value.trim();
	const err = $('#signin-error');
	err.textContent = t ? '' : 'Enter an API token.';
	if (!t) return input.focus();
	$('#token-submit').disabled = true;
	try {
		const me = await api('/api/v1/me', { token: t, auth: false });
		setToken(t);
		input.value = '';
		startApp(me);
	} catch (e) {
		err.textContent = e.message;
		input.focus();
	}
	$('#token-submit').disabled = false;
}

async function signOut() {
	const had = token();
	setToken('');
	if (!had && S.me.method === 'session') {
		try { await post('/auth/logout'); } catch (e) { if (e.status !== 401) toast(e.message, 'error'); }
		S.status.signed_in = false;
	}
	showSignin('You are signed out.');
}

function sessionEnded() {
	if (!S.me) return;
	setToken('');
	S.status.signed_in = false;
	showSignin('Your session ended; sign in again');
}

function showSignin(msg) {
	if (S.live) S.live.abort();
	if (S.view) S.view.ctl.abort();
	if ($('#confirm').open) $('#confirm').close();
	Object.assign(S, { me: null, view: null, live: null, perms: new Set() });
	for (const id of ['#nav', '#who', '#view']) $(id).hidden = true;
	$('#view').replaceChildren();
	$('#view').removeAttribute('data-ready');
	$('#node-label').textContent = '';
	$('#signin-main').hidden = false;
	$('#signin-note').textContent = msg;
	$('#signin-error').textContent = '';
	$('#signin-idp').replaceChildren(S.status.sign_in_available
		? el('a', { id: 'signin-oidc', class: 'button', href: '/auth/login?return_to=/ui/' }, 'Sign in with your identity provider') : '');
	conn('signed-out', 'Not signed in');
	document.title = 'Sign in · bzzz console';
	$('#token-input').focus();
}

function startApp(me) {
	setMe(me);
	$('#signin-main').hidden = true;
	for (const id of ['#nav', '#who', '#view']) $(id).hidden = false;
	conn('connecting', 'Connecting…');
	Object.assign(S, { samples: [], seq: 0, nodeKey: null, live: new AbortController() });
	liveLoop(S.live.signal);
	// Names for the node ids shown everywhere.
	if (can('p2p:read')) get('/api/v1/peers', S.live.signal).then(learn, () => {});
	if (can('cluster:read')) get('/api/v1/cluster/members', S.live.signal).then(learn, () => {});
	if (!location.hash.startsWith('#/')) history.replaceState(null, '', '#/cluster');
	route();
}
function setMe(me) {
	S.me = me || {};
	S.perms = new Set(S.me.permissions || []);
	if (S.me.node_id && S.me.node_name) S.names.set(S.me.node_id, S.me.node_name);
	const roles = (S.me.roles || []).join(', ');
	$('#whoami').textContent = `${S.me.principal || 'unknown'}${roles && ` (${roles})`}`;
	$('#node-label').textContent = [S.me.node_name, S.me.version && `v${S.me.version}`].filter(Boolean).join(' · ');
}
function learn(r) {
	for (const x of (r && (r.peers || r.members)) || []) if (x.node_id && x.name) S.names.set(x.node_id, x.name);
}

// ---- live loop

async function liveLoop(signal) {
	const bo = backoff();
	while (!signal.aborted) {
		const t0 = Date.now();
		let r;
		try {
			r = await api(`/api/v1/console/history?after=${S.seq}&wait_ms=${WAIT}`, { signal, timeout: WAIT + 15000 });
		} catch (e) {
			if (quiet(e)) return;
			const n = bo.n + 1;
			const say = retryable(e) ? (s) => conn('retrying', lost(n)(s)) : (s) => conn('error', `Live updates unavailable: ${e.message} — retrying in ${s} s`);
			try { await sleep(bo.delay(e.retryAfter), signal, say); } catch { return; }
			continue;
		}
		const fresh = onHistory(r || {}, bo.n > 0);
		bo.reset();
		// An answer with nothing new that came at once (a node without samples
		// yet) must not become a busy loop.
		if (!fresh && Date.now() - t0 < 1000) { try { await sleep(1000, signal); } catch { return; } }
	}
}

function onHistory(r, reconnected) {
	const key = `${r.node_id}|${r.started_ms}`;
	const restarted = S.nodeKey !== null && key !== S.nodeKey;
	S.nodeKey = key;
	S.changes = r.health_changes || [];
	S.leadership = r.leadership || [];
	S.scaling = r.scaling || [];
	// A new process numbers its samples from 1 again: the window starts over.
	if (restarted || r.seq < S.seq) Object.assign(S, { samples: [], seq: 0 });
	if (restarted) {
		conn('restarted', `Node restarted at ${hms(r.started_ms)} — reconnected`, 10000);
		get('/api/v1/me', S.live.signal).then((me) => { if (S.me) setMe(me); }, () => {});
		route();
		return true;
	}
	const fresh = (r.samples || []).filter((s) => s.seq > S.seq);
	S.samples.push(...fresh);
	S.samples.splice(0, S.samples.length - 900);
	if (S.samples.length) S.seq = last(S.samples).seq;
	if (reconnected) conn('ok', 'Reconnected', 3000);
	else if (Date.now() >= S.holdUntil) conn('ok', 'Live');
	// One refresh per answer at most, and none while a confirmation is open
	// (the invoking button stays put).
	const v = S.view;
	if (v && !v.busy && !$('#confirm').open) {
		v.busy = true;
		v.refresh().catch(() => {}).finally(() => { v.busy = false; });
	}
	return fresh.length > 0;
}

// ---- router

function route() {
	if (!S.me) return;
	// A question about the view being left is answered no.
	if ($('#confirm').open) $('#confirm').close();
	if (S.view) S.view.ctl.abort();
	const h = location.hash.replace(/^#\/?/, '');
	const qi = h.indexOf('?') + 1 || h.length + 1;
	const [first, ...rest] = h.slice(0, qi - 1).split('/');
	let arg = rest.join('/');
	try { arg = decodeURIComponent(arg); } catch { /* kept as typed */ }
	let name = arg ? { tasks: 'task', rooms: 'room' }[first] : first;
	if (!VIEWS[name]) name = 'cluster';
	const [view, title, nav = name] = VIEWS[name];
	const main = $('#view');
	const ctl = new AbortController();
	const c = {
		arg, ctl, main, signal: ctl.signal, parts: [], query: new URLSearchParams(h.slice(qi)),
		add: (...n) => add(main, n),
		h2: (text) => c.add(el('h2', null, text)),
		async refresh() { for (const run of c.parts) if (!ctl.signal.aborted) await run(); },
	};
	S.view = c;
	main.removeAttribute('data-ready');
	main.dataset.view = name;
	main.replaceChildren(el('h1', null, title, arg ? [' ', mono(arg)] : ''));
	for (const a of document.querySelectorAll('#nav a')) {
		if (a.dataset.view === nav) a.setAttribute('aria-current', 'page');
		else a.removeAttribute('aria-current');
	}
	document.title = `${title} · bzzz console`;
	const ready = () => {
		if (S.view !== c || ctl.signal.aborted) return;
		main.dataset.ready = '1';
		// The first view's data on screen: what BENCHMARKS.md measures.
		if (!performance.getEntriesByName('bzzz:first-data').length) performance.mark('bzzz:first-data');
	};
	Promise.resolve().then(() => view(c)).then(ready, (e) => {
		if (quiet(e) || ctl.signal.aborted) return;
		c.add(note(errText(e), 'error'));
		ready();
	});
}

// ---- cluster

async function viewCluster(c) {
	await part(c, async (signal) => {
		// /health is the cached rollup (/health/detailed would run every check live).
		const opt = (perm, path) => (can(perm) ? soft(get(path, signal)) : null);
		const [d, e, p, m] = await Promise.all([soft(health('/health', signal)), opt('election:read', '/api/election/status'),
			opt('p2p:read', '/api/v1/peers'), opt('cluster:read', '/api/v1/cluster/members')]);
		learn(p);
		learn(m);
		// Only what is shown goes into the data, so that a steady cluster is not re-rendered.
		if (e && e.heartbeat_age_ms != null) e.heartbeat_age_ms = e.heartbeat_age_ms < 5000 ? 0 : Math.round(e.heartbeat_age_ms / 1000);
		if (p && p.links) p.links = p.links.length;
		const l = last(S.samples) || {};
		const status = l.health || d.status;
		const score = l.score != null ? l.score : { healthy: 1, degraded: 0.5 }[status] ?? 0;
		return { role: d.role, score, health: status, flight: l.in_flight, e, p, m };
	}, renderCluster);
	c.h2('Leadership history');
	await part(c, () => S.leadership, (list) => (list.length
		? el('ol', { id: 'leadership', class: 'plain', reversed: true }, list.slice().reverse().map((l) => el('li', null,
			time(l.t_ms), ' — admin ', node(l.admin_id), ` — term ${l.term}`)))
		: note('No admin change recorded yet.')));
}

function renderCluster(d) {
	const me = S.me;
	const e = d.e && !d.e.error && d.e;
	const p = d.p && !d.p.error && d.p;
	const adminId = (e && e.admin_id) || '';
	const capable = new Map();
	for (const m of (d.m && d.m.members) || []) capable.set(m.node_id, m.role === 'admin-capable');
	for (const x of (e && e.candidates) || []) if (!capable.has(x.node_id)) capable.set(x.node_id, x.admin_capable);
	const yn = (id) => (capable.has(id) ? (capable.get(id) ? 'yes' : 'no') : '—');
	const role = (id, r) => [r || '—', id === adminId && [' ', el('span', { class: 'b b-admin' }, 'admin')]];
	const failed = (x) => note((x && x.error) || 'unavailable', 'error');
	const admin = !can('election:read') ? cannot('the election', 'election:read') : !e ? failed(d.e) : [dl([
		['Admin', [el('span', { id: 'admin-id', class: 'mono wrap', 'data-node-id': adminId }, adminId || 'none'),
			nameOf(adminId) && el('span', { class: 'muted' }, ` ${nameOf(adminId)}${adminId === me.node_id ? ' (this node)' : ''}`)]],
		['Term', el('span', { id: 'admin-term' }, String(e.term ?? ''))],
		['Since', time(e.since)],
		['Heartbeat', e.heartbeat_age_ms == null ? '—' : e.heartbeat_age_ms ? `${e.heartbeat_age_ms} s ago` : 'under 5 s ago'],
		['Electorate', e.electorate && e.electorate.members && `${e.electorate.members.length} member(s)`],
		e.problem && ['Problem', el('span', { class: 'error' }, String(e.problem))],
	]), el('p', null, wbtn('election:admin', 'trigger-election', 'Trigger election',
		'Start an election now? The admin hands over to its best live member.',
		// 504: no new admin within the wait, with the usual body.
		() => post('/api/election/trigger', {}).catch((x) => { if (x.status === 504 && x.body && x.body.current) return x.body; throw x; }),
		(r) => (r.changed ? `New admin: ${nameOf(r.current.admin_id) || r.current.admin_id} (term ${r.current.term})` : 'No new admin within the wait')))];
	const mesh = !can('p2p:read') ? cannot('peers', 'p2p:read') : !p ? failed(d.p) : dl([['Peers', num(p.connected_peers)],
		['Mesh links', num(p.links)], ['DHT nodes', p.dht && `${num(p.dht.good_nodes)} good, ${num(p.dht.dubious_nodes)} dubious`]]);
	const id12 = (id) => mono(String(id || '').slice(0, 12), id);
	const rows = [row({ 'data-node-id': me.node_id }, [me.node_name || '—', el('span', { class: 'muted' }, ' (this node)')],
		id12(me.node_id), role(me.node_id, d.role), yn(me.node_id), d.health && badge(d.health), p ? num(p.connected_peers) : '—', me.version, 'self',
		d.flight != null ? `${d.flight} in flight` : '', 'now')];
	for (const x of (p && p.peers) || []) {
		rows.push(row({ 'data-node-id': x.node_id }, x.name || x.agent_id, id12(x.node_id), role(x.node_id, x.role), yn(x.node_id),
			x.health && badge(x.health), x.peers == null ? '—' : num(x.peers), x.version, x.status, `${num(x.current_tasks)}/${num(x.max_tasks)}`,
			time(x.last_seen)));
	}
	return el('div', null, el('div', { class: 'grid' },
		card('This node', dl([['Name', me.node_name], ['Node ID', wrap(me.node_id, 'mono')], ['Version', me.version], ['Role', d.role],
			['Health', d.health && badge(d.health)], ['Score', num(d.score)], ['Started', time(me.started_ms)], ['Election state', e && badge(e.state)]])),
		card('Admin', admin), card('Mesh', mesh)),
	table('Nodes: this node and its live peers', ['Name', 'Node ID', 'Role', 'Admin-capable', 'Health', 'Peers', 'Version', 'Status', 'Tasks', 'Last seen'],
		rows, { id: 'nodes' }));
}

// ---- health

async function viewHealth(c) {
	await part(c, (signal) => health('/health/checks', signal).then((r) => ({ status: r.status, checks: r.checks })), (r) => {
		const l = last(S.samples);
		return el('div', null, el('p', null, 'Rollup: ', badge(r.status), l ? ` score ${num(l.score)}` : ''),
			table('Health checks', ['Check', 'Status', 'Critical', 'Message', 'Last run', 'Duration', can('admin:write') && 'Action'],
				Object.keys(r.checks || {}).sort().map((name) => {
					const x = r.checks[name];
					return row({ 'data-check': name }, name, badge(x.status), x.critical ? 'yes' : 'no', wrap(x.message),
						x.last_run ? time(x.last_run) : 'never', num(x.duration_ms, ' ms'),
						wbtn('admin:write', 'run-check', 'Run now', `Run the check ${name} now?`, () => post(`/admin/health/check/${enc(name)}`),
							(y) => `${name}: ${y.check ? `${y.check.status} — ${y.check.message}` : 'done'}`, `Run ${name} now`));
				})));
	});
	c.h2('Check changes');
	await part(c, () => S.changes, (list) => table('Changes of check status, newest first', ['Time', 'Check', 'Change', 'Message'],
		list.slice().reverse().map((x) => row(null, time(x.t_ms), x.check, [badge(x.from), ' → ', badge(x.to)], wrap(x.message)))));
}

// ---- tasks

const pager = (first, next, onFirst, onNext) => el('p', { class: 'actions' },
	first && el('button', { type: 'button', 'data-k': 'first', onclick: onFirst }, 'First page'),
	next != null && el('button', { type: 'button', 'data-k': 'next', onclick: onNext }, 'Next page'));
const input = (id, value, size) => el('input', { id, value: value || '', size });
// A filter form over the keys of f (kept in S, so that a view comes back filtered).
function filters(c, f, fields, apply) {
	const box = el('form', { class: 'filters', 'aria-label': 'Filters' }, fields.map(([label, n]) => el('label', null, `${label} `, n)),
		el('button', { type: 'submit' }, 'Apply'));
	box.addEventListener('submit', (ev) => {
		ev.preventDefault();
		for (const [, n] of fields) f[n.id.slice(3)] = n.type === 'checkbox' ? n.checked : n.value.trim();
		f.before = null;
		apply();
	});
	c.add(box);
	return box;
}
const select = (id, values, cur) => el('select', { id }, el('option', { value: '' }, 'any'), values.map((v) => el('option', { value: v, selected: v === cur }, v)));

async function viewTasks(c) {
	if (lacks(c, 'tasks:read', 'tasks')) return;
	await part(c, (signal) => get('/api/v1/tasks/stats', signal), (st) => el('p', { class: 'chips' },
		STATES.filter((s) => st.by_state && st.by_state[s]).map((s) => el('span', { class: 'chip' }, badge(s), ` ${st.by_state[s]}`)),
		['queue_depth', 'in_flight', 'waiting_agents'].map((k) => el('span', { class: 'chip' }, `${k.replace('_', ' ')} ${num(st[k])}`))));
	const f = S.tf;
	const all = el('input', { id: 'tf-all', type: 'checkbox', checked: !!f.all });
	let list;
	const form = filters(c, f, [['State', select('tf-state', STATES, f.state)], ['Executor', input('tf-executor', f.executor, 10)],
		['Project', input('tf-project', f.project, 10)], ['All nodes', all]], () => list());
	all.addEventListener('change', () => form.requestSubmit());
	// `node=all` needs a shared store (409 otherwise). The public storage check
	// names the backend: a SQLite node is spared the refused request.
	if (S.allNodes === undefined) {
		const st = (await soft(health('/health/checks', c.signal))).checks || {};
		if (((st['storage-health'] || {}).details || {}).backend === 'sqlite') S.allNodes = false;
		else S.allNodes = await get('/api/v1/tasks?node=all&limit=1', c.signal).then(() => true, (e) => (e.status === 409 ? false : undefined));
	}
	all.parentNode.hidden = !S.allNodes;
	f.all = f.all && S.allNodes;
	list = await part(c, (signal) => {
		const q = new URLSearchParams({ limit: 50 });
		if (f.all) q.set('node', 'all');
		for (const k of ['state', 'executor', 'project']) if (f[k]) q.set(k, f[k]);
		if (f.before != null) q.set(f.all ? 'before_id' : 'before', f.before);
		return get(`/api/v1/tasks?${q}`, signal);
	}, (r) => {
		const next = f.all ? r.next_before_id : r.next_before;
		return el('div', null, table(`Tasks on ${f.all ? 'every node' : 'this node'}, newest first`,
			['ID', 'Name', 'Project', 'Executor', 'State', 'Owner', 'Attempts', 'Created', 'Updated'],
			(r.tasks || []).map((t) => row({ 'data-task-id': t.id }, taskA(t.id), t.name, t.project, t.executor, badge(t.state),
				node(t.owner_node), `${(t.attempts || []).length}/${t.max_attempts}`, time(t.created_ms), time(t.updated_ms)))),
		pager(f.before != null, next, () => { f.before = null; list(); }, () => { f.before = next; list(); }));
	});
}

async function viewTask(c) {
	const path = `/api/v1/tasks/${enc(c.arg)}`;
	if (lacks(c, 'tasks:read', 'tasks')) return;
	let task = {};
	let polling = false;
	let after = 0;
	const seen = new Set();
	const events = el('ol', { id: 'task-events', class: 'log plain' });
	const status = el('p', { class: 'muted small', role: 'status' });
	let refetch = () => {};
	// Follows the events until the task finishes; again when it runs again (a replay).
	const follow = () => {
		if (polling) return;
		polling = true;
		longPoll(c.signal, () => `${path}/events?after=${after}&wait_ms=${WAIT}`, (r) => {
			for (const e of r.events || []) {
				if (seen.has(e.n)) continue;
				seen.add(e.n);
				events.append(el('li', null, time(e.at_ms), ' ', el('strong', null, e.type), e.attempt ? ` attempt ${e.attempt}` : '',
					e.detail && [' — ', wrap(e.detail)]));
			}
			after = r.next || after;
			if (r.finished || r.state !== task.state) refetch();
			return !r.finished;
		}, (text) => { status.textContent = text; }).finally(() => { polling = false; });
	};
	refetch = await part(c, (signal) => get(path, signal).then((t) => { delete t.events; return t; }), (t) => {
		task = t;
		if (!TERMINAL.includes(t.state)) follow();
		const room = String(t.hmmm_room || '').replace(/^bzzz\/meta\/issue\//, '');
		const json = (v) => el('pre', null, JSON.stringify(v, null, 2));
		return el('div', null, el('div', { class: 'grid' }, card('Summary', dl([
			['State', el('span', { id: 'task-state', class: `b b-${t.state}` }, t.state)],
			['Name', t.name], ['Project', t.project], ['Executor', t.executor], ['Owner node', node(t.owner_node)], ['Submitter', t.submitter],
			['Priority', num(t.priority)], ['Attempts', `${(t.attempts || []).length} of ${t.max_attempts}`],
			['Created', time(t.created_ms)], ['Updated', time(t.updated_ms)], ['Finished', time(t.finished_ms)],
			t.error && ['Error', wrap(t.error, 'error')], t.cancel_requested && ['Cancel', 'requested'],
			t.ucxl_address && ['UCXL', ucxlA(t.ucxl_address)],
			room && can('hmmm:read') && ['Room', link(`#/rooms/${enc(room)}`, 'Discussion room')],
		]), el('p', { class: 'actions' },
			TERMINAL.includes(t.state) ? '' : wbtn('tasks:write', 'cancel', 'Cancel task', `Cancel task ${t.id}?`, () => post(`${path}/cancel`),
				(x) => (x.state === 'cancelled' ? 'Task cancelled' : 'Cancel requested: the running attempt is being stopped')),
			t.state === 'dead' && wbtn('dlq:write', 'replay', 'Replay', `Replay dead task ${t.id} with a fresh attempt budget?`,
				() => post(`/api/v1/dlq/${enc(t.id)}/replay`), 'Task queued again'))),
		card('Input', t.input_hidden ? note('Hidden: only the submitter and holders of tasks:admin see it.') : json(t.input)),
		card('Result', json(t.result))),
		table('Attempts', ['#', 'Node', 'Agent', 'State', 'Error', 'Assigned', 'Started', 'Finished'], (t.attempts || []).map((a) => row(null,
			String(a.number), node(a.node_id), mono(a.agent_id), badge(a.state), wrap(a.error, 'error'),
			time(a.assigned_ms), time(a.started_ms), time(a.finished_ms)))));
	});
	c.h2('Events');
	c.add(status, events);
	follow();
}

async function viewDlq(c) {
	if (lacks(c, 'dlq:read', 'the dead-letter queue')) return;
	let before = null;
	const w = can('dlq:write');
	const list = await part(c, (signal) => get(`/api/v1/dlq?limit=50${before != null ? `&before=${before}` : ''}`, signal), (r) => el('div', null,
		table('Dead tasks on this node, newest first', ['ID', 'Name', 'Project', 'Executor', 'Error', 'Attempts', 'Died', w && 'Actions'],
			(r.tasks || []).map((t) => row({ 'data-task-id': t.id }, taskA(t.id), t.name, t.project, t.executor, wrap(t.error, 'error'),
				String((t.attempts || []).length), time(t.finished_ms || t.updated_ms), w && el('span', { class: 'actions' },
					wbtn('dlq:write', 'replay', 'Replay', `Replay dead task ${t.id}?`, () => post(`/api/v1/dlq/${enc(t.id)}/replay`),
						`Task ${t.id} queued again`, `Replay ${t.id}`),
					wbtn('dlq:write', 'purge', 'Purge', `Delete dead task ${t.id} for good?`, () => api(`/api/v1/dlq/${enc(t.id)}`, { method: 'DELETE' }),
						`Task ${t.id} purged`, `Purge ${t.id}`))))),
		pager(before != null, r.next_before, () => { before = null; list(); }, () => { before = r.next_before; list(); })));
}

// ---- agents

async function viewAgents(c) {
	if (lacks(c, 'agents:read', 'agents')) return;
	// One input for the life of the view, moved into each rendering, so that
	// a number being typed survives the refreshes.
	const size = el('input', { id: 'scale-agents', type: 'number', step: 1 });
	// Filled from the pool's size until the user turns to it: a refresh must
	// not refill a field the user just cleared to type into. Focus counts (a
	// clear fires no input event: a refresh between the clear and the first
	// key made "3" typed into a cleared "2" read "23").
	for (const ev of ['focus', 'input', 'change']) size.addEventListener(ev, () => { size.dataset.edited = '1'; });
	// The button too, with the bounds of the latest rendering: a refresh that
	// replaced it between the press and the release would swallow the click.
	let as = {};
	const scale = wbtn('agents:write', 'scale', 'Scale', () => {
		const n = Number(size.value);
		if (Number.isInteger(n) && n >= as.minAgents && n <= as.maxAgents) return `Set this node's agent pool to ${n} agent(s)?`;
		refuse(`Enter a whole number of agents from ${as.minAgents} to ${as.maxAgents}`, size);
	}, () => post('/api/v1/agents/scale', { agents: Number(size.value) }), (x) => `Agent pool: ${num((x.summary || {}).size)} agent(s)`);
	await part(c, (signal) => get('/api/v1/agents', signal).then((r) => {
		for (const a of r.agents || []) delete a.last_heartbeat_ms;
		return r;
	}), (r) => {
		const s = r.summary || {};
		as = r.autoscaling || {};
		Object.assign(size, { min: as.minAgents, max: as.maxAgents });
		if (!size.dataset.edited) size.value = s.size;
		return el('div', null, scale && el('form', { class: 'filters card', 'aria-label': 'Manual scaling', onsubmit: (ev) => { ev.preventDefault(); scale.click(); } },
			el('label', { for: 'scale-agents' }, 'Agents'), size, scale, el('span', { class: 'muted small' }, `from ${as.minAgents} to ${as.maxAgents}`)),
		el('div', { class: 'grid' },
			card('Pool', dl([['Size', num(s.size)], ['Busy', num(s.active)], ['Idle', num(s.idle)], ['In error', num(s.failed)], ['Draining', num(s.draining)],
				['Healthy ratio', num(s.healthy_ratio)], ['Last scaling', s.last_decision ? [s.last_decision, ' (', time(s.last_decision_ms), ')'] : 'none yet']])),
			card('Autoscaling', dl([['Enabled', as.enabled ? 'yes' : 'no'], ['Bounds', `${num(as.minAgents)} to ${num(as.maxAgents)} agents, step ${num(as.step)}`]]))),
		table('Agents of this node', ['Agent', 'State', 'Role', 'Current task', 'Capabilities', 'Succeeded / failed / done', 'Mean', 'Score', 'Restarts', 'Last error'],
			(r.agents || []).map((a) => {
				const st = a.stats || {};
				return row(null, mono(a.id), badge(a.state), a.role, a.current_task && taskA(a.current_task),
					(a.capabilities || []).join(', '), `${num(st.succeeded)} / ${num(st.failed)} / ${num(st.completed)}`, num(st.mean_seconds, ' s'),
					num(st.performance_score), num(st.restarts), wrap(a.last_error, 'error'));
			})));
	});
	// Every change of the pool's size this node's history saw (the reason of
	// the last one is "Last scaling" above).
	c.h2('Scaling events');
	await part(c, () => S.scaling, (list) => (list.length
		? el('ol', { id: 'scaling', class: 'plain', reversed: true }, list.slice().reverse().map((x) => el('li', null,
			time(x.t_ms), ` — ${num(x.from)} → ${num(x.to)} agents`)))
		: note('No change of the pool size recorded yet.')));
}

// ---- rooms

async function viewRooms(c) {
	if (lacks(c, 'hmmm:read', 'rooms')) return;
	const f = S.rf;
	let list;
	filters(c, f, [['State', select('rf-state', ROOM_STATES, f.state)], ['Project', input('rf-project', f.project, 10)],
		['Task', input('rf-task', f.task, 14)]], () => list());
	list = await part(c, (signal) => {
		const q = new URLSearchParams({ limit: 100 });
		for (const k of ['state', 'project', 'task']) if (f[k]) q.set(k, f[k]);
		return get(`/api/v1/hmmm/rooms?${q}`, signal);
	}, (r) => table('Rooms, newest change first', ['Room', 'Title', 'State', 'Project', 'Task', 'Messages', 'Owner', 'Updated'],
		(r.rooms || []).map((m) => row({ 'data-room-id': m.id, class: m.state === 'escalated' && 'escalated' },
			link(`#/rooms/${enc(m.id)}`, m.id, 'mono'), m.title,
			badge(m.state),
			m.project, m.task_id && taskA(m.task_id), num(m.messages), node(m.owner), time(m.updated_ms)))));
}

async function viewRoom(c) {
	const path = `/api/v1/hmmm/rooms/${enc(c.arg)}`;
	if (lacks(c, 'hmmm:read', 'rooms')) return;
	let room = null;
	let next = 0;
	const msgs = el('ol', { id: 'room-messages', class: 'log plain' });
	const status = el('p', { class: 'muted small', role: 'status' });
	const forms = el('div');
	const addMsgs = (list) => {
		for (const m of list || []) {
			if (m.seq <= next) continue;
			next = m.seq;
			msgs.append(el('li', { class: `m-${m.type}` }, el('div', null, time(m.created_ms), ' ', el('strong', null, m.agent), ' on ', node(m.node), ' ',
				badge(m.type), m.in_reply_to && el('span', { class: 'muted' }, ` re ${m.in_reply_to}`)), el('div', { class: 'body' }, m.body || '')));
		}
	};
	const header = await part(c, (signal) => get(`${path}?after=${next}&limit=1000`, signal).then((r) => {
		addMsgs(r.messages);
		room = r;
		roomForms(forms, r, path);
		const meta = { ...r };
		for (const k of ['messages', 'next', 'updated_ms']) delete meta[k];
		return meta;
	}), (r) => {
		return card(r.title || 'Room', dl([
			['State', el('span', { id: 'room-state', class: `b b-${r.state}` }, r.state)], ['Project', r.project],
			['Task', r.task_id ? taskA(r.task_id) : 'none (a free room)'], ['Owner', [node(r.owner), r.owned && ' (this node)']],
			['Created', time(r.created_ms)], ['Participants', (r.participants || []).map((x) => x.agent).join(', ')],
			r.escalation && ['Escalation', el('span', { class: 'error' }, String(r.escalation))], r.decision && ['Decision', String(r.decision)],
		]));
	});
	c.h2('Messages');
	c.add(status, msgs, forms);
	if (!room) return;
	longPoll(c.signal, () => `${path}/messages?after=${next}&wait_ms=${WAIT}`, (r) => {
		addMsgs(r.messages);
		if (r.state !== room.state) header();
	}, (text) => { status.textContent = text; });
}

// Rebuilt only when the room's state changes, so that typing survives the refreshes.
function roomForms(box, room, path) {
	const key = `${room.state}|${!!room.task_id}`;
	if (box.dataset.key === key) return;
	box.dataset.key = key;
	box.replaceChildren();
	const open = room.state === 'open';
	const form = (title, fields, button) => box.append(el('form', { class: 'card stack', 'aria-label': title, onsubmit: (ev) => ev.preventDefault() },
		el('h2', null, title), fields.filter(Boolean).map(([label, n]) => [el('label', { for: n.id }, label), n]), el('p', null, button)));
	if (open && can('hmmm:write')) {
		const type = el('select', { id: 'post-type' }, MSG_TYPES.map((t) => el('option', null, t)));
		const agent = input('post-agent', String(S.me.principal || 'operator').replace(/[^A-Za-z0-9_.:@-]/g, '-').slice(0, 128));
		const body = el('textarea', { id: 'post-body', rows: 3 });
		form('Post a message', [['Type', type], ['Agent', agent], ['Message', body]], wbtn('hmmm:write', 'post-message', 'Post message',
			() => (body.value.trim() ? `Post this ${type.value} to the room as ${agent.value}?` : refuse('Write a message first', body)),
			() => post(`${path}/messages`, { type: type.value, agent: agent.value.trim(), body: body.value }),
			(r) => { body.value = ''; return r.forwarded_to ? `Forwarded to the room's owner ${nameOf(r.forwarded_to) || r.forwarded_to}` : 'Message posted'; }));
	}
	if ((open || room.state === 'escalated') && can('hmmm:admin')) {
		const kind = el('select', { id: 'resolve-kind' }, ['answer', 'decision', 'retry'].map((k) => el('option', { value: k }, k)));
		const text = el('textarea', { id: 'resolve-text', rows: 3 });
		const newInput = room.task_id && el('textarea', { id: 'resolve-input', rows: 4, class: 'mono', placeholder: '{"op": "echo", "value": "…"}' });
		let body;
		form('Resolve', [['Kind', kind], ['Answer or decision', text], newInput && ['New task input (JSON, for retry; optional)', newInput]],
			wbtn('hmmm:admin', 'resolve', 'Resolve room', () => {
				body = { kind: kind.value };
				if (text.value.trim()) body.text = text.value.trim();
				if (newInput && newInput.value.trim()) {
					if (kind.value !== 'retry') return refuse('A new input goes with the kind retry', kind);
					try { body.input = JSON.parse(newInput.value); } catch (e) { return refuse(`The new input is not JSON: ${e.message}`, newInput); }
				}
				return `Resolve this room as "${body.kind}"? It closes the room${room.task_id ? ' and resumes its task' : ''}.`;
			}, () => post(`${path}/resolve`, body), 'Room resolved'));
	}
	if (!open && room.state !== 'escalated') box.append(note(`The room is ${room.state}: it takes no more messages.`));
}

// ---- SLURP

async function viewSlurp(c) {
	if (lacks(c, 'slurp:read', 'SLURP')) return;
	let first;
	try {
		first = await get('/api/v1/slurp/status', c.signal);
	} catch (e) {
		// A node without SLURP has none of its routes.
		if (e.status === 404) return c.add(note('SLURP is not running on this node.'));
		if (quiet(e)) throw e;
	}
	await part(c, (signal) => {
		const p = first ? Promise.resolve(first) : get('/api/v1/slurp/status', signal);
		first = null;
		return p.then((s) => { if (s.queue) delete s.queue.as_of_ms; return s; });
	}, (s) => {
		const q = s.queue || {};
		return card('Status', dl([
			['Admin', [node(s.admin), s.is_admin && ' (this node)']], ['Term', num(s.term)],
			['Processing', s.running_term ? `yes, for term ${s.running_term}` : 'no'],
			['Queue', `${num(q.queued)} queued, ${num(q.done)} done, ${num(q.dead)} dead (capacity ${num(q.capacity)})`],
			['Last processed', s.last_processed ? [`#${s.last_processed.seq} at `, time(s.last_processed.at_ms)] : 'none'],
			s.error && ['Error', el('span', { class: 'error' }, String(s.error))],
		]));
	});
	c.h2('Records');
	await part(c, (signal) => get('/api/v1/slurp/records?limit=100', signal), (r) => el('div', null,
		el('p', null, `${num(r.count)} record(s) you may read; `, el('strong', { id: 'slurp-withheld' }, num(r.withheld)), ' withheld (sealed for roles you do not hold).'),
		table('Decision records, oldest first', ['Event', 'Project', 'Task', 'Summary', 'Decision', 'Authors', 'Term', 'Created', 'Address'],
			(r.records || []).map((x) => {
				const rec = Object(x.record);
				return row(null, `#${x.event_seq}`, x.project, x.task_id && taskA(x.task_id), rec.summary, wrap(rec.decision),
					(rec.authors || []).join(', '), num(x.term), time(x.created_ms), x.address && ucxlA(x.address));
			}))));
	c.h2('Dead events');
	await part(c, (signal) => get('/api/v1/slurp/dlq?limit=100', signal), (r) => table('Dead SLURP events',
		['Event', 'Source', 'Project', 'Summary', 'Error', 'Attempts', 'Accepted', can('slurp:admin') && 'Action'],
		(r.events || []).map((e) => row(null, `#${e.seq}`, e.source, e.project, Object(e.payload).summary, wrap(e.error, 'error'),
			num(e.attempts), time(e.accepted_ms), wbtn('slurp:admin', 'slurp-replay', 'Replay', `Queue dead SLURP event #${e.seq} again?`,
				() => post(`/api/v1/slurp/dlq/${e.seq}/replay`), `Event #${e.seq} queued again`, `Replay event ${e.seq}`)))));
}

// ---- UCXL

// "ucxl://a:r@p:t/<temporal>/path" with its temporal replaced. Search and
// discover answer content keys, which have none: then it is added.
function withTemporal(addr, t) {
	const m = /^(ucxl:\/\/[^/]+)(?:\/([^/?#]*))?(.*)$/.exec(addr);
	if (!m) return addr;
	if (/^(\*\^|\*~\d*|~~\d*|\^\^\d*|\d{4}-\d\d-\d\dT[\d:.]+Z)$/.test(m[2] || '')) return `${m[1]}/${t}${m[3]}`;
	const rest = (m[2] || '') + m[3];
	return `${m[1]}/${t}${rest && `/${rest}`}`;
}

async function viewUcxl(c) {
	if (lacks(c, 'ucxl:read', 'UCXL content')) return;
	const addr = el('input', { id: 'ucxl-address', class: 'mono wide', value: c.query.get('address') || '', spellcheck: 'false',
		placeholder: 'ucxl://agent:role@project:task/*^/path' });
	const shown = el('div', { 'aria-live': 'polite' });
	const results = el('div');
	const form = (label, n, button, go) => el('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); go(n.value.trim()); } },
		el('label', { for: n.id }, label), n, el('button', { type: 'submit' }, button));
	c.add(el('div', { class: 'card' },
		form('Address', addr, 'Open', open),
		form('Search', el('input', { id: 'ucxl-q', type: 'search' }), 'Search', (v) => find(`Search “${v}”`, `/ucxi/v1/search?q=${enc(v)}&limit=100`)),
		form('Pattern', el('input', { id: 'ucxl-pattern', class: 'mono wide', value: 'ucxl://any:any@any:any/*^', spellcheck: 'false' }), 'Discover',
			(v) => find(`Discover ${v}`, `/ucxi/v1/discover?pattern=${enc(v)}&limit=100`))),
	el('div', { class: 'grid2' }, shown, results));
	// The newest version number of the key shown, once known (0 until then).
	let newest = 0;
	let key = '';
	let cur = null;
	const button = (label, onclick, disabled) => el('button', { type: 'button', 'data-k': label, onclick, disabled }, label);

	// The hash keeps the address as asked: a link to *^ stays "the latest".
	function show(d, asked) {
		const v = d.version || {};
		if (withTemporal(d.address, '*^') !== key) { key = withTemporal(d.address, '*^'); newest = 0; }
		cur = d;
		addr.value = asked;
		const h = `#/ucxl?address=${enc(asked)}`;
		if (location.hash !== h) history.pushState(null, '', h);
		shown.replaceChildren(card('Version', el('p', { class: 'mono wrap' }, d.address),
			el('p', { class: 'actions' }, button('Older', () => nav(-1), v.number <= 1), button('Newer', () => nav(1), !!newest && v.number >= newest),
				button('Latest', () => open(key))),
			dl([['Number', num(v.number)], ['Author', v.author && `${v.author.agent} (${v.author.role})`], ['Type', v.content_type],
				['Created', time(v.created_at)], ['Size', num(v.size, ' B')], ['Writer', v.writer && node(v.writer.node_id)], ['Source', d.source],
				['Hash', wrap(v.content_hash, 'mono')], v.tombstone && ['Tombstone', 'yes: deleted at this version']]),
			el('h3', null, 'Content'),
			v.tombstone ? note('A tombstone has no content.') : [d.encoding === 'base64' && note('Binary content, shown as base64.'),
				el('pre', null, String(d.content ?? '').slice(0, 100000))]));
	}
	async function load(path, asked, latest) {
		try {
			const d = await ucxi(path, c.signal);
			show(d, asked || d.address);
			if (latest) newest = (d.version || {}).number || 0;
			// A pinned address does not say how many versions exist: ask the newest once.
			else if (!newest) newest = ((await soft(ucxi(`/ucxi/v1/get?address=${enc(key)}`, c.signal))).version || {}).number || 0;
			if (newest && cur === d) show(d, addr.value);
		} catch (e) {
			if (!quiet(e)) shown.replaceChildren(card('Version', note(`${e.status === 404 ? 'Not found: ' : ''}${errText(e)}`, 'error')));
		}
	}
	function open(a) { if (a) load(`/ucxi/v1/get?address=${enc(a)}`, a, /^ucxl:\/\/[^/]+\/\*\^(\/|$)/.test(a)); }
	function nav(steps) { if (cur) load(`/ucxi/v1/navigate?address=${enc(cur.address)}&steps=${steps}`); }
	async function find(title, path) {
		try {
			found(title, await ucxi(path, c.signal));
		} catch (e) {
			if (!quiet(e)) results.replaceChildren(card(title, note(errText(e), 'error')));
		}
	}
	function found(title, d) {
		S.found = { title, d };
		results.replaceChildren(card(title, (d.results || []).length ? el('ul', { class: 'plain' }, d.results.map((x) => el('li', null,
			el('button', { type: 'button', class: 'linkish mono', onclick: () => open(withTemporal(x.address, '*^')) }, x.address),
			x.version && el('span', { class: 'muted small' }, ` v${x.version.number}`)))) : note('No match.'),
		d.providers && el('p', null, `Providers in the DHT: ${d.providers.map((p) => nameOf(p) || p.slice(0, 12)).join(', ') || 'none'}`)));
	}
	if (S.found) found(S.found.title, S.found.d);
	if (addr.value) await open(addr.value);
	else shown.append(note('Open an address, or search and pick a result.'));
}

// ---- metrics

const SERIES = [['score', 'Health score'], ['peers', 'Peers'], ['links', 'Mesh links'], ['agents', 'Agents'], ['queue_depth', 'Queue depth'],
	['in_flight', 'Tasks in flight'], ['succeeded_per_s', 'Tasks succeeded/s'], ['failed_per_s', 'Tasks failed/s'],
	['requests_per_s', 'HTTP requests/s'], ['pubsub_per_s', 'Pubsub messages/s'], ['resident_bytes', 'Resident memory (MiB)', 1048576],
	['cpu_percent', 'CPU %']];

async function viewMetrics(c) {
	if (lacks(c, 'system:read', 'the node history')) return;
	await part(c, () => S.samples, (s) => (s.length ? el('div', null,
		el('p', { class: 'muted small' }, `${s.length} samples from ${hms(s[0].t_ms)}.`),
		el('div', { class: 'charts' }, SERIES.map(([k, label, div]) => chart(s, k, label, div || 1))))
		: note('Waiting for the first samples…')), (s) => `${s.length}:${S.seq}`);
}

function chart(s, key, label, div) {
	const W = 300;
	const H = 80;
	const pts = s.map((x) => [x.t_ms, typeof x[key] === 'number' && isFinite(x[key]) ? x[key] / div : null]);
	const vals = pts.map((p) => p[1]).filter((v) => v != null);
	const now = vals.length ? last(vals) : null;
	const lo = Math.min(0, ...vals);
	const hi = Math.max(lo + 1e-9, ...vals);
	const t0 = pts[0][0];
	const span = Math.max(1, last(pts)[0] - t0);
	const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', class: 'chart', role: 'img',
		'aria-label': `${label}: last ${num(now)}, from ${num(lo)} to ${num(hi)}` }, svg('title', {}, `${label}, last ${num(now)}`),
	svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'axis' }));
	// An unknown value (null) breaks the line rather than drawing a zero.
	let run = [];
	const flush = () => {
		if (run.length === 1) run.push(run[0].replace(/^[\d.]+/, (x) => (+x + 1).toFixed(1)));
		if (run.length) g.append(svg('polyline', { points: run.join(' '), class: 'line' }));
		run = [];
	};
	for (const [t, v] of pts) {
		if (v == null) flush();
		else run.push(`${(((t - t0) / span) * W).toFixed(1)},${(H - 2 - ((v - lo) / (hi - lo)) * (H - 4)).toFixed(1)}`);
	}
	flush();
	return el('figure', { class: 'card' }, el('figcaption', null, el('span', null, label), el('strong', null, num(now))), g,
		el('div', { class: 'muted small' }, `min ${num(lo)} · max ${num(hi)}`));
}

// name: [view, title, nav link]
const VIEWS = {
	cluster: [viewCluster, 'Cluster'], health: [viewHealth, 'Health'], tasks: [viewTasks, 'Tasks'], task: [viewTask, 'Task', 'tasks'],
	dlq: [viewDlq, 'Dead-letter queue'], agents: [viewAgents, 'Agents'], rooms: [viewRooms, 'HMMM rooms'], room: [viewRoom, 'Room', 'rooms'],
	slurp: [viewSlurp, 'SLURP decision records'], ucxl: [viewUcxl, 'UCXL browser'], metrics: [viewMetrics, 'Metrics'],
};

boot();
})();
