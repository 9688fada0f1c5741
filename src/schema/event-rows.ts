const isRow = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !(value instanceof Date) && !Array.isArray(value);

/**
 * What a selection asks of a row, field by field, and whether it names its columns (`select`);
 * null when no event's row can hold it (a filter, order or page).
 */
type Asked = { fields: readonly (readonly [field: string, wanted: unknown])[]; namesColumns: boolean } | null;

/** Each selection's fields, worked out once: a shared operation checks its one planned query against every event. */
const askedBySelection = new WeakMap<object, Asked>();

function askedOf(selection: object): Asked {
  const cached = askedBySelection.get(selection);
  if (cached !== undefined) return cached;
  const { select, include, ...options } = selection as { select?: unknown; include?: unknown };
  const asked =
    Object.keys(options).length > 0
      ? null
      : { fields: Object.entries({ ...(isRow(select) ? select : {}), ...(isRow(include) ? include : {}) }), namesColumns: isRow(select) };
  askedBySelection.set(selection, asked);
  return asked;
}

/**
 * Whether `row`, which an event carried (every column of its model, and the relations the event
 * chose), already holds all that a Pothos prisma `selection` (`{}`, `{select}` or `{include}`,
 * nested for relations) asks, so GraphQL can resolve it with no query. Conservative: a nested
 * relation must name its columns (`select`), and a filter, order or page on a relation (a list)
 * means the database is needed.
 */
export function eventRowHolds(row: object, selection: object, nested = false): boolean {
  const asked = askedOf(selection);
  // `include`, or nothing, asks for every column: only the event's own row is known to carry them all.
  if (!asked || (nested && !asked.namesColumns)) return false;
  const carried = row as Record<string, unknown>;
  return asked.fields.every(([field, wanted]) => {
    if (wanted === false) return true;
    const value = carried[field];
    if (value === undefined) return false;
    if (wanted === true) return !isRow(value) && !Array.isArray(value);
    // A relation the event knows is empty (a bot message has no author) needs nothing more.
    return value === null || (isRow(value) && isRow(wanted) && eventRowHolds(value, wanted, true));
  });
}
