// The graph view: Neo4j's visualisation library (NVL) drawing driver nodes and relationships.
import { NVL } from '@neo4j-nvl/base';
import { formatValue } from './results.js';

const COLORS = {
  Product: '#4c8eda', User: '#f79767', Category: '#57c7e3', Brand: '#d9a8e3', Entity: '#8dcc93',
};
const CAPTION_KEYS = ['name', 'title', 'id'];
const OPTIONS = {
  renderer: 'canvas', // captions and arrowheads; no GPU needed
  layout: 'd3Force', // a force layout on the CPU: NVL's default one computes on WebGL
  disableWebGL: true,
  disableTelemetry: true,
  disableWebWorkers: true, // the layout runs on the page: no worker files to serve
  initialZoom: 1,
};

function caption(node) {
  for (const key of CAPTION_KEYS) {
    const v = node.properties[key];
    if (v !== undefined && v !== null) {
      const text = formatValue(v);
      return text.length > 24 ? `${text.slice(0, 23)}…` : text;
    }
  }
  return node.labels[0] ?? '';
}

function toNvlNode(node) {
  const label = node.labels[0];
  return { id: node.elementId, caption: caption(node), color: COLORS[label] ?? '#a5abb6', size: 25 };
}

function toNvlRelationship(rel) {
  return { id: rel.elementId, from: rel.startNodeElementId, to: rel.endNodeElementId, caption: rel.type };
}

export class GraphView {
  /**
   * @param {HTMLElement} container where to draw
   * @param {(node: object) => void} onNodeClick called with the driver node clicked
   */
  constructor(container, onNodeClick) {
    this.container = container;
    this.onNodeClick = onNodeClick;
    this.elements = new Map(); // element id -> driver node or relationship
    this.layoutDone = true;
    this.nvl = null;
    container.addEventListener('click', (evt) => {
      if (!this.nvl) return;
      const { nvlTargets } = this.nvl.getHits(evt, ['node']);
      const hit = nvlTargets.nodes.find((n) => n.insideNode) ?? nvlTargets.nodes[0];
      if (hit) this.onNodeClick(this.elements.get(hit.data.id));
    });
  }

  /** Draw `graph` ({nodes, relationships} of driver objects) instead of what is drawn. */
  replace(graph) {
    if (this.nvl) this.nvl.destroy();
    this.elements.clear();
    this.layoutDone = false;
    this.container.dataset.layout = 'moving';
    this.nvl = new NVL(this.container, [], [], OPTIONS, {
      onLayoutDone: () => {
        this.layoutDone = true;
        this.nvl.fit(this.nvl.getNodes().map((n) => n.id));
        this.container.dataset.layout = 'done';
      },
      onError: (error) => console.error('graph view:', error),
    });
    this.add(graph);
  }

  /** Add `graph` to what is drawn (elements already drawn stay as they are). */
  add(graph) {
    if (!this.nvl) return this.replace(graph);
    const nodes = graph.nodes.filter((n) => !this.elements.has(n.elementId));
    const rels = graph.relationships.filter((r) => !this.elements.has(r.elementId));
    for (const e of [...nodes, ...rels]) this.elements.set(e.elementId, e);
    if (nodes.length || rels.length) {
      this.layoutDone = false;
      this.container.dataset.layout = 'moving';
      this.nvl.addAndUpdateElementsInGraph(nodes.map(toNvlNode), rels.map(toNvlRelationship));
    }
    this.publishCounts();
  }

  /** Node and relationship counts, as NVL holds them. */
  counts() {
    if (!this.nvl) return { nodes: 0, relationships: 0 };
    return { nodes: this.nvl.getNodes().length, relationships: this.nvl.getRelationships().length };
  }

  /** Where node `id` is drawn, in page (client) coordinates. */
  clientPosition(id) {
    const position = this.nvl.getNodePositions().find((n) => n.id === id);
    if (!position) return null;
    const zoom = this.nvl.getScale();
    const pan = this.nvl.getPan();
    const box = this.container.getBoundingClientRect();
    return {
      x: box.left + box.width / 2 + (position.x - pan.x) * zoom,
      y: box.top + box.height / 2 + (position.y - pan.y) * zoom,
    };
  }

  publishCounts() {
    const { nodes, relationships } = this.counts();
    this.container.dataset.nodes = String(nodes);
    this.container.dataset.relationships = String(relationships);
  }
}
