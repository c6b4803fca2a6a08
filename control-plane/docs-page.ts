// The interactive API reference at /docs: one self-contained page (no CDN: edge sites are often
// offline). It holds no data: it asks for an API token, loads /v1/openapi.json with it, lists every
// operation by tag with its parameters, body schema and responses, and can send requests ("Try it").
// The token stays in the tab's sessionStorage and goes only to this server.

export const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flotilla API reference</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f7f8fa; }
  body { margin: 0; display: grid; grid-template-columns: 220px 1fr; min-height: 100vh; }
  nav { background: #1d2330; color: #e8ebf0; padding: 1rem; position: sticky; top: 0; height: 100vh; overflow: auto; box-sizing: border-box; }
  nav a { color: #cfd6e4; display: block; text-decoration: none; padding: .15rem 0; }
  main { padding: 1rem 2rem; max-width: 1100px; }
  header form { display: flex; gap: .5rem; margin-bottom: 1rem; }
  input, textarea, button { font: inherit; }
  input[type=password], input[type=text] { padding: .3rem .5rem; border: 1px solid #c4cad6; border-radius: 4px; }
  button { padding: .3rem .8rem; border: 0; border-radius: 4px; background: #2f6fde; color: white; cursor: pointer; }
  .op { background: white; border: 1px solid #e1e5ec; border-radius: 6px; margin: .5rem 0; }
  .op > summary { padding: .5rem .75rem; cursor: pointer; display: flex; gap: .75rem; align-items: baseline; }
  .m { font-weight: 700; font-size: .8rem; padding: .1rem .4rem; border-radius: 3px; color: white; min-width: 3.5rem; text-align: center; }
  .get { background: #2e8b57; } .put { background: #c77d00; } .post { background: #2f6fde; } .delete { background: #c0392b; } .patch { background: #7d3cbd; }
  .path { font-family: ui-monospace, monospace; }
  .body { padding: 0 .75rem .75rem; }
  table { border-collapse: collapse; width: 100%; font-size: .9rem; }
  td, th { border-bottom: 1px solid #eef0f4; text-align: left; padding: .25rem .4rem; vertical-align: top; }
  pre { background: #f1f3f7; padding: .5rem; overflow: auto; max-height: 24rem; font-size: .8rem; }
  .muted { color: #6b7385; }
  #status { margin-left: .5rem; }
</style>
</head>
<body>
<nav><strong>Flotilla API</strong><div id="tags" class="muted">Enter a token to load the reference.</div></nav>
<main>
<header>
  <h1 id="title">Flotilla API reference</h1>
  <form id="login"><input id="token" type="password" placeholder="API token (flo_...)" size="48" autocomplete="off"><button>Load</button><span id="status" class="muted"></span></form>
  <p id="desc" class="muted"></p>
</header>
<div id="ops"></div>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) k === 'class' ? (e.className = v) : e.setAttribute(k, v);
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  };
  const token = () => sessionStorage.getItem('flotilla-token') || '';
  async function load() {
    $('status').textContent = 'loading...';
    const res = await fetch('/v1/openapi.json', { headers: { authorization: 'Bearer ' + token() } });
    if (!res.ok) { $('status').textContent = 'refused: ' + res.status + ' ' + ((await res.json().catch(() => ({}))).detail || ''); return; }
    render(await res.json());
    $('status').textContent = '';
  }
  function schemaOf(doc, s) {
    return JSON.stringify(s, null, 2);
  }
  function render(doc) {
    $('title').textContent = doc.info.title + ' ' + doc.info.version;
    $('desc').textContent = doc.info.description;
    const byTag = new Map();
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(ops)) {
        const tag = (op.tags || ['Other'])[0];
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push({ path, method, op });
      }
    const order = (doc.tags || []).map((t) => t.name);
    const tags = [...byTag.keys()].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
    $('tags').replaceChildren(...tags.map((t) => el('a', { href: '#tag-' + t }, t)));
    const out = [];
    for (const tag of tags) {
      const list = byTag.get(tag);
      out.push(el('h2', { id: 'tag-' + tag }, tag));
      for (const { path, method, op } of list) out.push(operation(doc, path, method, op));
    }
    $('ops').replaceChildren(...out);
  }
  function operation(doc, path, method, op) {
    const d = el('details', { class: 'op' });
    const auth = (op.security && op.security.length === 0) ? 'no auth' : Object.keys((op.security || doc.security)[0] || {}).join(', ') + (op['x-flotilla-scope'] ? ' (' + op['x-flotilla-scope'] + ')' : '');
    d.append(el('summary', {}, el('span', { class: 'm ' + method }, method.toUpperCase()), el('span', { class: 'path' }, path), el('span', {}, op.summary), el('span', { class: 'muted' }, auth)));
    const body = el('div', { class: 'body' });
    const params = op.parameters || [];
    const inputs = {};
    if (params.length) {
      const t = el('table', {}, el('tr', {}, el('th', {}, 'parameter'), el('th', {}, 'in'), el('th', {}, 'description'), el('th', {}, 'value')));
      for (const p of params) {
        const i = el('input', { type: 'text', placeholder: p.required ? 'required' : '' });
        inputs[p.in + ':' + p.name] = i;
        t.append(el('tr', {}, el('td', { class: 'path' }, p.name), el('td', {}, p.in), el('td', {}, p.description || ''), el('td', {}, i)));
      }
      body.append(el('h4', {}, 'Parameters'), t);
    }
    let text;
    if (op.requestBody) {
      const [type, media] = Object.entries(op.requestBody.content)[0];
      body.append(el('h4', {}, 'Body (' + Object.keys(op.requestBody.content).join(', ') + ')'));
      const sd = el('details', {}, el('summary', {}, 'schema'), el('pre', {}, schemaOf(doc, media.schema)));
      text = el('textarea', { rows: '6', cols: '80', placeholder: type });
      body.append(sd, text);
    }
    const rt = el('table', {}, el('tr', {}, el('th', {}, 'status'), el('th', {}, 'description')));
    for (const [code, r] of Object.entries(op.responses)) rt.append(el('tr', {}, el('td', {}, code), el('td', {}, r.description)));
    body.append(el('h4', {}, 'Responses'), rt);
    const result = el('pre', {}, '');
    const send = el('button', {}, 'Try it');
    send.addEventListener('click', async () => {
      let url = path;
      const q = new URLSearchParams();
      const headers = { authorization: 'Bearer ' + token() };
      for (const p of params) {
        const v = inputs[p.in + ':' + p.name].value;
        if (!v) continue;
        if (p.in === 'path') url = url.replace('{' + p.name + '}', encodeURIComponent(v));
        else if (p.in === 'query') q.set(p.name, v);
        else if (p.in === 'header') headers[p.name] = v;
      }
      if (q.toString()) url += '?' + q;
      const init = { method: method.toUpperCase(), headers };
      if (text && text.value) { init.body = text.value; headers['content-type'] = text.value.trim().startsWith('{') ? 'application/json' : 'application/yaml'; }
      result.textContent = '...';
      try {
        const res = await fetch(url, init);
        const t = await res.text();
        let shown = t;
        try { shown = JSON.stringify(JSON.parse(t), null, 2); } catch {}
        result.textContent = res.status + ' ' + res.statusText + ' (X-Request-Id ' + res.headers.get('x-request-id') + ')\\n' + shown;
      } catch (e) { result.textContent = String(e); }
    });
    body.append(el('p', {}, send), result);
    d.append(body);
    return d;
  }
  $('login').addEventListener('submit', (e) => { e.preventDefault(); sessionStorage.setItem('flotilla-token', $('token').value.trim()); load(); });
  if (token()) load();
})();
</script>
</body>
</html>
`;
