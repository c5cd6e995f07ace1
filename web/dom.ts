/** The page's two DOM helpers: an element by id, and a table cell holding text (never HTML). */
export const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

export function cell (text: string | number): HTMLTableCellElement {
  const td = document.createElement('td')
  td.textContent = String(text)
  return td
}
