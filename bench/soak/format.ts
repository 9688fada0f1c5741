import { num } from '../lib/table';

export const ms = (value: number | null | undefined) => num(value, 1);
export const mb = (value: number | null | undefined) => num(value, 1);
/** Seconds as m:ss. */
export const clock = (seconds: number) => `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, '0')}`;
