/** Takes the first `item` out of `list`, in place; false when it was not in it. */
export function removeFirst<T>(list: T[], item: T): boolean {
  const index = list.indexOf(item);
  if (index < 0) return false;
  list.splice(index, 1);
  return true;
}
