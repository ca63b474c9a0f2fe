// The graph view: cytoscape.js (MIT) drawing driver nodes and relationships on a canvas, laid
// out by its built-in force-directed layout (cose).
import cytoscape from 'cytoscape';
import { formatValue } from './results.js';

const COLORS = {
  Product: '#4c8eda', User: '#f79767', Category: '#57c7e3', Brand: '#d9a8e3', Entity: '#8dcc93',
};
const CAPTION_KEYS = ['name', 'title', 'id'];
const STYLE = [
  {
    selector: 'node',
    style: {
      'background-color': 'data(color)', label: 'data(caption)', width: 26, height: 26,
      'border-width': 2, 'border-color': '#ffffff', color: '#1d2330', 'font-size': 10,
      'text-valign': 'bottom', 'text-margin-y': 3, 'text-background-color': '#fbfcfe',
      'text-background-opacity': 0.8,
    },
  },
  { selector: 'node:selected', style: { 'border-color': '#1d2330', 'border-width': 3 } },
  {
    selector: 'edge',
    style: {
      width: 1.5, 'line-color': '#b5bbc6', 'curve-style': 'bezier', 'target-arrow-shape': 'triangle',
      'target-arrow-color': '#b5bbc6', label: 'data(type)', 'font-size': 8, color: '#6b7385',
      'text-rotation': 'autorotate', 'text-background-color': '#fbfcfe', 'text-background-opacity': 1,
    },
  },
];
// No animation: each layout shows its end result, and `layoutstop` marks it done.
const LAYOUT = {
  name: 'cose', animate: false, fit: true, padding: 30,
  idealEdgeLength: () => 70, nodeRepulsion: () => 20000, nodeOverlap: 10,
};
const SPREAD = 40; // how far from a drawn neighbour a new node starts, in model units
const MOST_FIT_ZOOM = 1.5; // a small graph is centred at this zoom, not blown up to fill the view

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

function toNode(node) {
  const label = node.labels[0];
  const data = { id: node.elementId, caption: caption(node), color: COLORS[label] ?? '#a5abb6' };
  return { group: 'nodes', data };
}

function toEdge(rel) {
  const data = { id: rel.elementId, source: rel.startNodeElementId, target: rel.endNodeElementId };
  return { group: 'edges', data: { ...data, type: rel.type } };
}

export class GraphView {
  /**
   * @param {HTMLElement} container where to draw
   * @param {(node: object) => void} onNodeClick called with the driver node clicked
   */
  constructor(container, onNodeClick) {
    this.container = container;
    this.elements = new Map(); // element id -> driver node or relationship
    this.layoutDone = true;
    this.cy = cytoscape({ container, style: STYLE, minZoom: 0.1, maxZoom: 4 });
    this.cy.on('tap', 'node', (evt) => onNodeClick(this.elements.get(evt.target.id())));
  }

  /** Draw `graph` ({nodes, relationships} of driver objects) instead of what is drawn. */
  replace(graph) {
    this.cy.elements().remove();
    this.elements.clear();
    this.add(graph, true);
  }

  /**
   * Add `graph` to what is drawn (elements already drawn stay as they are); a new node starts
   * next to a drawn neighbour, and the layout goes on from where the nodes are.
   */
  add(graph, randomize = false) {
    const nodes = graph.nodes.filter((n) => !this.elements.has(n.elementId));
    const rels = graph.relationships.filter((r) => !this.elements.has(r.elementId));
    for (const e of [...nodes, ...rels]) this.elements.set(e.elementId, e);
    if (nodes.length || rels.length) {
      const added = this.cy.add([...nodes.map(toNode), ...rels.map(toEdge)]);
      if (!randomize) this.placeNearNeighbours(added.nodes());
      this.layout(randomize);
    }
    this.publishCounts();
  }

  placeNearNeighbours(fresh) {
    fresh.forEach((node, i) => {
      const anchor = node.neighborhood('node').difference(fresh)[0];
      const at = anchor ? anchor.position() : { x: 0, y: 0 };
      const angle = (2 * Math.PI * i) / fresh.length;
      node.position({ x: at.x + SPREAD * Math.cos(angle), y: at.y + SPREAD * Math.sin(angle) });
    });
  }

  layout(randomize) {
    this.layoutDone = false;
    this.container.dataset.layout = 'moving';
    const layout = this.cy.layout({ ...LAYOUT, randomize });
    layout.one('layoutstop', () => {
      if (this.cy.zoom() > MOST_FIT_ZOOM) {
        this.cy.zoom(MOST_FIT_ZOOM);
        this.cy.center();
      }
      this.layoutDone = true;
      this.container.dataset.layout = 'done';
    });
    layout.run();
  }

  /** Call when the container is shown again (its size may have changed while hidden). */
  shown() {
    this.cy.resize();
  }

  /** Node and relationship counts, as cytoscape holds them. */
  counts() {
    return { nodes: this.cy.nodes().length, relationships: this.cy.edges().length };
  }

  /** Where node `id` is drawn, in page (client) coordinates. */
  clientPosition(id) {
    const node = this.cy.getElementById(id);
    if (node.empty()) return null;
    const at = node.renderedPosition();
    const box = this.container.getBoundingClientRect();
    return { x: box.left + at.x, y: box.top + at.y };
  }

  publishCounts() {
    const { nodes, relationships } = this.counts();
    this.container.dataset.nodes = String(nodes);
    this.container.dataset.relationships = String(relationships);
  }
}
