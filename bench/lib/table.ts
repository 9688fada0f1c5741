type Cell = string | number | null | undefined;

const line = (row: string[], widths: number[]) => '  ' + row.map((text, c) => (c === 0 ? text.padEnd(widths[c]!) : text.padStart(widths[c]!))).join('   ');
const rule = (widths: number[]) => '  ' + widths.map((w) => '-'.repeat(w)).join('   ');

/** A plain-text table: first column left-aligned (labels), the others right-aligned (numbers). */
export function table(headers: string[], rows: Cell[][]): string {
  const cells = [headers, ...rows.map((row) => row.map(cell))];
  const widths = headers.map((_, c) => Math.max(...cells.map((row) => (row[c] ?? '').length)));
  return [line(cells[0]!, widths), rule(widths), ...cells.slice(1).map((row) => line(row, widths))].join('\n');
}

/**
 * The same layout for rows printed as they come (a long run's progress): the widths are fixed up
 * front, at least each header's, since later rows are not known yet.
 */
export function streamingTable(headers: string[], minWidths: number[]): { header: string; row: (cells: Cell[]) => string } {
  const widths = headers.map((header, c) => Math.max(header.length, minWidths[c] ?? 0));
  return { header: `${line(headers, widths)}\n${rule(widths)}`, row: (cells) => line(cells.map(cell), widths) };
}

/** Numbers with thousands separators and at most `digits` decimals; '—' for missing values. */
export function num(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits });
}

const cell = (value: Cell): string => (typeof value === 'number' ? num(value) : (value ?? '—'));
