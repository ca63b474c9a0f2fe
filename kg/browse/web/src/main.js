// kgrec browse: log in, pick a recipe or write Cypher, see the rows as a table and a graph,
// click a node to expand its neighbourhood. Everything runs in the page, over the official
// JavaScript driver (Bolt on a WebSocket) to the Neo4j that `kgrec browse` names.
import neo4j from 'neo4j-driver';
import { GraphView } from './graph.js';
import { collectGraph, formatValue, renderTable } from './results.js';

const TOKEN_KEY = 'kgrec-browse-token';

const $ = (id) => document.getElementById(id);
const state = { config: null, driver: null, recipe: null };
// What the page shows, for people and for the test that drives the page (tests/kg/test_browse.py):
// the phase and the counters are mirrored in <body data-*> so that a test can wait on them with
// CSS selectors (the page's Content-Security-Policy forbids evaluating strings).
const probe = {
  phase: 'loading', runs: 0, expansions: 0, lastRun: null, error: null,
  counts: () => graph.counts(),
  nodes: () => [...graph.elements.values()]
    .filter((e) => neo4j.isNode(e))
    .map((n) => ({ id: n.elementId, labels: n.labels, key: n.properties.id ?? null })),
  clientPosition: (id) => graph.clientPosition(id),
  layoutDone: () => graph.layoutDone,
};
window.kgrecBrowse = probe;

function publish() {
  const data = document.body.dataset;
  data.phase = probe.phase;
  data.runs = String(probe.runs);
  data.expansions = String(probe.expansions);
  if (probe.error) data.error = probe.error;
  else delete data.error;
}
const graph = new GraphView($('graph'), (node) => expand(node));

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : 'muted';
}

// ------------------------------------------------------------------------------ login
async function start() {
  const answer = await fetch('api/config');
  state.config = await answer.json();
  fillRecipes();
  // The token comes in the address's #fragment, which is never sent to a server; keep it for
  // this tab only and take it out of the address bar.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', location.pathname);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!state.config.auth) return connect(null);
  if (token) {
    const r = await fetch('api/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (r.ok) {
      try {
        return await connect((await r.json()).password);
      } catch (error) {
        return showLogin(error.message);
      }
    }
    sessionStorage.removeItem(TOKEN_KEY);
  }
  showLogin('');
}

function showLogin(message) {
  probe.phase = 'login';
  publish();
  $('login-user').textContent = state.config.user;
  $('login-uri').textContent = state.config.uri;
  $('login-error').textContent = message;
  $('login').hidden = false;
  $('password').focus();
}

async function connect(password) {
  const { uri, user, database } = state.config;
  const auth = state.config.auth ? neo4j.auth.basic(user, password) : undefined;
  const driver = neo4j.driver(uri, auth, { disableLosslessIntegers: true, userAgent: 'kgrec-browse' });
  try {
    await driver.verifyConnectivity({ database });
  } catch (error) {
    await driver.close();
    throw error;
  }
  state.driver = driver;
  $('login').hidden = true;
  $('workspace').hidden = false;
  $('connection').textContent = `${user ?? 'no auth'} @ ${uri} (${database})`;
  probe.phase = 'ready';
  publish();
}

$('login').addEventListener('submit', async (evt) => {
  evt.preventDefault();
  $('login-error').textContent = 'connecting…';
  try {
    await connect($('password').value);
    $('password').value = '';
  } catch (error) {
    $('login-error').textContent = error.message;
  }
});

// ---------------------------------------------------------------------------- recipes
function fillRecipes() {
  for (const recipe of state.config.recipes) {
    const option = document.createElement('option');
    option.value = recipe.name;
    option.textContent = `${recipe.name} (v${recipe.version})`;
    $('recipe').appendChild(option);
  }
}

function chooseRecipe(name) {
  state.recipe = state.config.recipes.find((r) => r.name === name) ?? null;
  const box = $('recipe-params');
  box.replaceChildren();
  $('free-params-label').hidden = Boolean(state.recipe);
  $('recipe-description').textContent = state.recipe?.description ?? '';
  if (!state.recipe) return;
  $('editor').value = state.recipe.text;
  for (const p of state.recipe.parameters) {
    const label = document.createElement('label');
    label.textContent = `$${p.name}`;
    label.title = `${p.type}: ${p.description}`;
    const input = document.createElement('input');
    input.name = p.name;
    input.dataset.type = p.type;
    input.placeholder = `${p.type}: ${p.description}`;
    if (p.default !== null) input.value = String(p.default);
    label.appendChild(input);
    box.appendChild(label);
  }
}

$('recipe').addEventListener('change', (evt) => chooseRecipe(evt.target.value));

function typed(name, type, text) {
  if (type === 'integer') {
    if (!/^[+-]?\d+$/.test(text)) throw new Error(`$${name} must be an integer`);
    return neo4j.int(text);
  }
  if (type === 'float') {
    const value = Number(text);
    if (text === '' || Number.isNaN(value)) throw new Error(`$${name} must be a number`);
    return value;
  }
  if (type === 'boolean') {
    if (!/^(true|false)$/i.test(text)) throw new Error(`$${name} must be true or false`);
    return text.toLowerCase() === 'true';
  }
  return text;
}

function recipeParams() {
  const params = {};
  for (const input of $('recipe-params').querySelectorAll('input')) {
    const text = input.value.trim();
    if (!text) throw new Error(`$${input.name} is required (${input.placeholder})`);
    params[input.name] = typed(input.name, input.dataset.type, text);
  }
  return params;
}

// JSON numbers that are whole are sent as Cypher integers (LIMIT $k needs one).
function cypherValue(value) {
  if (Number.isInteger(value)) return neo4j.int(value);
  if (Array.isArray(value)) return value.map(cypherValue);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cypherValue(v)]));
  }
  return value;
}

function freeParams() {
  const text = $('free-params').value.trim() || '{}';
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`parameters are not JSON: ${error.message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('parameters must be a JSON object, e.g. {"product": "p1"}');
  }
  return cypherValue(value);
}

// -------------------------------------------------------------------------------- run
function routing() {
  return $('allow-writes').checked ? neo4j.routing.WRITE : neo4j.routing.READ;
}

async function run() {
  if (!state.driver) return;
  let params;
  try {
    params = state.recipe ? recipeParams() : freeParams();
  } catch (error) {
    setStatus(error.message, true);
    return;
  }
  setStatus('running…');
  const started = performance.now();
  try {
    const result = await state.driver.executeQuery($('editor').value, params, {
      database: state.config.database,
      routing: routing(),
    });
    const elements = collectGraph(result.records);
    renderTable($('table'), result.keys, result.records);
    showTab(elements.nodes.length || !result.records.length ? 'graph' : 'table');
    graph.replace(elements); // after showTab: the layout needs the container's size
    const ms = Math.round(performance.now() - started);
    setStatus(
      `${result.records.length} rows; ${elements.nodes.length} nodes, ` +
        `${elements.relationships.length} relationships; ${ms} ms`,
    );
    probe.lastRun = {
      rows: result.records.length,
      nodes: elements.nodes.length,
      relationships: elements.relationships.length,
    };
    probe.error = null;
  } catch (error) {
    setStatus(error.message, true);
    probe.error = error.message;
  }
  probe.runs += 1;
  publish();
}

async function expand(node) {
  if (!node || !state.driver) return;
  $('details').textContent =
    `(:${node.labels.join(':')}) ` +
    Object.entries(node.properties).map(([k, v]) => `${k}: ${formatValue(v)}`).join('\n');
  try {
    const { query, limit } = state.config.expand;
    const result = await state.driver.executeQuery(
      query,
      { id: node.elementId, limit: neo4j.int(limit) },
      { database: state.config.database, routing: neo4j.routing.READ },
    );
    graph.add(collectGraph(result.records));
    setStatus(`expanded ${node.labels[0] ?? 'node'} ${node.properties.id ?? ''}: ` +
      `${result.records.length} relationships (at most ${limit})`);
  } catch (error) {
    setStatus(error.message, true);
  }
  probe.expansions += 1;
  publish();
}

$('run').addEventListener('click', run);
$('editor').addEventListener('keydown', (evt) => {
  if (evt.key === 'Enter' && (evt.ctrlKey || evt.metaKey)) {
    evt.preventDefault();
    run();
  }
});

// ------------------------------------------------------------------------------- tabs
function showTab(name) {
  for (const button of document.querySelectorAll('.tabs button')) {
    button.classList.toggle('active', button.dataset.tab === name);
  }
  $('graph-box').hidden = name !== 'graph';
  $('table').hidden = name !== 'table';
  $('graph-help').hidden = name !== 'graph';
  if (name === 'graph') graph.shown();
}

for (const button of document.querySelectorAll('.tabs button')) {
  button.addEventListener('click', () => showTab(button.dataset.tab));
}

start().catch((error) => {
  probe.phase = 'error';
  probe.error = error.message;
  publish();
  document.body.insertAdjacentHTML('beforeend', '<p class="error" id="fatal"></p>');
  $('fatal').textContent = `kgrec browse could not start: ${error.message}`;
});
