const isRow = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !(value instanceof Date) && !Array.isArray(value);

/**
 * Whether `row`, which an event carried (every column of its model, and the relations the event
 * chose), already holds all that a Pothos prisma `selection` (`{}`, `{select}` or `{include}`,
 * nested for relations) asks, so GraphQL can resolve it with no query. Conservative: a nested
 * relation must name its columns (`select`), and a filter, order or page on a relation (a list)
 * means the database is needed.
 */
export function eventRowHolds(row: object, selection: object, nested = false): boolean {
  const { select, include, ...options } = selection as { select?: unknown; include?: unknown };
  if (Object.keys(options).length > 0) return false;
  // `include`, or nothing, asks for every column: only the event's own row is known to carry them all.
  if (nested && !isRow(select)) return false;
  const carried = row as Record<string, unknown>;
  const asked = { ...(isRow(select) ? select : {}), ...(isRow(include) ? include : {}) };
  return Object.entries(asked).every(([field, wanted]) => {
    if (wanted === false) return true;
    const value = carried[field];
    if (value === undefined) return false;
    if (wanted === true) return !isRow(value) && !Array.isArray(value);
    // A relation the event knows is empty (a bot message has no author) needs nothing more.
    return value === null || (isRow(value) && isRow(wanted) && eventRowHolds(value, wanted, true));
  });
}
