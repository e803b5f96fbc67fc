// README's code blocks, read from README.md itself so the tests run exactly what it shows.

/** The first fenced code block after a README heading line (e.g. "## As a library"), verbatim. */
export function codeBlockOf(markdown: string, heading: string): string {
  const at = markdown.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`README has no section "${heading}"`);
  const m = /```(\w*)\n([\s\S]*?)\n```/.exec(markdown.slice(at));
  if (!m) throw new Error(`section "${heading}" has no code block`);
  return m[2]!;
}
