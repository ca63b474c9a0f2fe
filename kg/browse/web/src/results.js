// Query results as graph elements (for the graph view) and as text cells (for the table).
import neo4j from 'neo4j-driver';

/** Every node, relationship and path in the records, each element once (by element id). */
export function collectGraph(records) {
  const nodes = new Map();
  const relationships = new Map();
  const visit = (value) => {
    if (value === null || value === undefined) return;
    if (neo4j.isNode(value)) {
      nodes.set(value.elementId, value);
    } else if (neo4j.isRelationship(value)) {
      relationships.set(value.elementId, value);
    } else if (neo4j.isPath(value)) {
      nodes.set(value.start.elementId, value.start);
      for (const segment of value.segments) {
        nodes.set(segment.end.elementId, segment.end);
        relationships.set(segment.relationship.elementId, segment.relationship);
      }
    } else if (Array.isArray(value)) {
      value.forEach(visit);
    } else if (typeof value === 'object' && value.constructor === Object) {
      Object.values(value).forEach(visit);
    }
  };
  for (const record of records) record.forEach((value) => visit(value));
  // A relationship is drawn only between nodes that are drawn.
  const drawn = [...relationships.values()].filter(
    (r) => nodes.has(r.startNodeElementId) && nodes.has(r.endNodeElementId),
  );
  return { nodes: [...nodes.values()], relationships: drawn };
}

/** A value as the text of a table cell. */
export function formatValue(value) {
  if (value === null || value === undefined) return '';
  if (neo4j.isNode(value)) {
    return `(:${value.labels.join(':')} ${formatProperties(value.properties)})`;
  }
  if (neo4j.isRelationship(value)) {
    return `[:${value.type} ${formatProperties(value.properties)}]`;
  }
  if (neo4j.isPath(value)) {
    let text = formatNodeShort(value.start);
    for (const s of value.segments) {
      const forward = s.relationship.startNodeElementId === s.start.elementId;
      const rel = `[:${s.relationship.type}]`;
      text += forward ? `-${rel}->` : `<-${rel}-`;
      text += formatNodeShort(s.end);
    }
    return text;
  }
  if (Array.isArray(value)) return `[${value.map(formatValue).join(', ')}]`;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object' && value.constructor === Object) return formatProperties(value);
  return String(value); // integers, temporal and spatial values print themselves
}

function formatProperties(props) {
  const parts = Object.entries(props).map(([k, v]) => `${k}: ${JSON.stringify(formatValue(v))}`);
  return `{${parts.join(', ')}}`;
}

function formatNodeShort(node) {
  const key = node.properties.id ?? node.elementId;
  return `(:${node.labels.join(':')} ${key})`;
}

/** Render records as an HTML table into `container`. */
export function renderTable(container, keys, records) {
  container.replaceChildren();
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  for (const key of keys) {
    const th = document.createElement('th');
    th.textContent = key;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const record of records) {
    const row = body.insertRow();
    for (const key of keys) row.insertCell().textContent = formatValue(record.get(key));
  }
  container.appendChild(table);
}
