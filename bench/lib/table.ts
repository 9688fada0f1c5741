/** A plain-text table: first column left-aligned (labels), the others right-aligned (numbers). */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((row) => row.map(cell))];
  const widths = headers.map((_, c) => Math.max(...cells.map((row) => (row[c] ?? '').length)));
  const line = (row: string[]) => '  ' + row.map((text, c) => (c === 0 ? text.padEnd(widths[c]!) : text.padStart(widths[c]!))).join('   ');
  return [line(cells[0]!), '  ' + widths.map((w) => '-'.repeat(w)).join('   '), ...cells.slice(1).map(line)].join('\n');
}

/** Numbers with thousands separators and at most `digits` decimals; '—' for missing values. */
export function num(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits });
}

const cell = (value: string | number | null | undefined): string => (typeof value === 'number' ? num(value) : (value ?? '—'));
